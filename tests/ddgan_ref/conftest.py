"""Kernel tests that break or rebuild a kernel do it in isolation: the `fresh_builds` fixture."""

import pytest

from ddgan_ref.ops import _build, _impl


@pytest.fixture
def fresh_builds(monkeypatch, tmp_path):
    """No cached builds or warnings, and a private extensions folder, for the duration of a test."""
    monkeypatch.setattr(_build, "_BUILT", {})
    monkeypatch.setattr(_impl, "_FALLBACK_WARNED", [False])
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    return tmp_path
