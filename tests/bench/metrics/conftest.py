"""Metrics tests never write to the user's cache: DDGAN_BENCH_CACHE points at a temporary folder."""

import pytest


@pytest.fixture(autouse=True)
def private_metrics_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DDGAN_BENCH_CACHE", str(tmp_path_factory.mktemp("metrics-cache")))
