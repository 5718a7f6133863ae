"""Kernel tests that break or rebuild a kernel do it in isolation: the `fresh_builds` fixture."""

import pytest
from torch.utils import cpp_extension
from torch.utils._cpp_extension_versioner import ExtensionVersioner

from ddgan_ref.ops import _build, _impl


@pytest.fixture
def fresh_builds(monkeypatch, tmp_path):
    """No cached builds or warnings, a private extensions folder and a private extension versioner, for the
    duration of a test. torch numbers an extension's builds per process: one of other sources (or in another
    folder) makes the process's next load of the real kernel a new version, which rebuilds it in the shared
    folder, and the next process rebuilds it again."""
    monkeypatch.setattr(_build, "_BUILT", {})
    monkeypatch.setattr(_impl, "_FALLBACK_WARNED", [False])
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    monkeypatch.setattr(cpp_extension, "JIT_EXTENSION_VERSIONER", ExtensionVersioner())
    return tmp_path
