"""ddgan_ref.ops implementation choice and building: explicit impls raise clearly, a failed build is diagnosed
and cached, "auto" falls back with exactly one warning, and (marker `slow`) the CUDA sources compile with nvcc."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from ddgan_ref.ops import (
    KernelBuildError,
    _build,
    _impl,
    bias_act,
    bias_act_ref,
    current_impl,
    upfirdn2d,
    upfirdn2d_ref,
    using,
)

REPO = Path(__file__).resolve().parents[2]
F = torch.ones(4, 4) / 16


def test_unknown_impl_raises_value_error():
    with pytest.raises(ValueError, match="unknown kernel impl"):
        upfirdn2d(torch.randn(1, 1, 4, 4), F, impl="triton")
    with pytest.raises(ValueError, match="unknown kernel impl"), using("fast"):
        pass


# ids avoid the bare word "cuda": tests/conftest.py skips items with a `cuda` keyword on CPU hosts.
@pytest.mark.parametrize("call", [
    lambda impl: upfirdn2d(torch.randn(1, 1, 4, 4), F, impl=impl),
    lambda impl: bias_act(torch.randn(2, 3), torch.zeros(3), act="lrelu", impl=impl),
], ids=["upfirdn2d", "bias_act"])
def test_explicit_gpu_impl_on_cpu_tensor_raises(call):
    with pytest.raises(RuntimeError, match=r"impl='cuda' runs on cuda tensors, but x is on cpu"):
        call("cuda")
    with using("cuda"), pytest.raises(RuntimeError, match="impl='cuda'"):
        call(None)


def test_explicit_cpu_impl_rejects_unsupported_dtype_and_auto_uses_ref():
    x = torch.randn(1, 2, 6, 6, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="the cpu kernel supports"):
        upfirdn2d(x, F, impl="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a declared capability, not a failure: no warning
        torch.testing.assert_close(upfirdn2d(x, F, impl="auto"), upfirdn2d_ref(x, F), atol=0, rtol=0)


def test_compiled_impl_refuses_a_filter_that_needs_a_gradient():
    f = F.clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match="f requires grad"):
        upfirdn2d(torch.randn(1, 1, 6, 6), f, impl="cpu")
    with using("cpu"), pytest.raises(RuntimeError, match="f requires grad"):
        upfirdn2d(torch.randn(1, 1, 6, 6), f)
    y = upfirdn2d(torch.randn(1, 1, 6, 6), f, impl="auto")  # auto: the reference, which differentiates f
    assert torch.autograd.grad(y.sum(), f)[0].shape == f.shape


def test_using_sets_and_restores_default():
    x = torch.randn(1, 1, 4, 4)
    with using("cuda"):
        with using("ref"):
            assert _impl.resolve(None, x, "upfirdn2d") == "ref"
        with pytest.raises(RuntimeError):
            _impl.resolve(None, x, "upfirdn2d")
    assert current_impl() == "auto"


def test_every_op_with_sources_declares_its_kernels():
    assert set(_impl.KERNELS) == set(_build.SOURCES)
    assert {op for op, kernels in _impl.KERNELS.items() if "cuda" in kernels} == set(_build.CUDA_OPS)
    assert all(set(kernels) <= set(_impl.COMPILED) for kernels in _impl.KERNELS.values())


def test_compile_marker_is_the_one_torch_sets():
    """The ops mark their build check constant for torch.compile as torch.compiler.assume_constant_result does,
    without importing torch._dynamo (the traced_by_torch_compile tests show dynamo reading it)."""
    ours, torchs = _impl.assume_constant_result(lambda: True), torch.compiler.assume_constant_result(lambda: True)
    assert vars(ours) == vars(torchs) and vars(ours)


def test_simulated_compile_failure_gives_log_and_diagnosis(fresh_builds, monkeypatch):
    broken = fresh_builds / "csrc"
    shutil.copytree(_build.CSRC, broken)
    for source in _build.SOURCES["upfirdn2d"]:  # every one: ninja lets a running compile of torch's headers finish
        (broken / source).write_text('#error "simulated compiler failure"\n')
    monkeypatch.setattr(_build, "CSRC", broken)
    with pytest.raises(KernelBuildError) as info:
        upfirdn2d(torch.randn(1, 1, 4, 4), F, impl="cpu")
    message = str(info.value)
    assert "simulated compiler failure" in message and "Diagnosis:" in message and "impl='ref'" in message
    assert str(broken) in message


@pytest.mark.parametrize("missing,expected", [
    ("compiler", "no C++ compiler: 'no-such-c++-compiler' is not on PATH"),
    ("ninja", "no ninja: install it with `pip install ninja`"),
    ("source", "missing source"),
])
def test_missing_prerequisite_is_diagnosed_without_building(fresh_builds, monkeypatch, missing, expected):
    if missing == "compiler":
        monkeypatch.setenv("CXX", "no-such-c++-compiler")
    elif missing == "ninja":
        which = shutil.which
        monkeypatch.setattr(_build.shutil, "which", lambda name: None if name == "ninja" else which(name))
    else:
        monkeypatch.setattr(_build, "CSRC", fresh_builds / "empty")
    with pytest.raises(KernelBuildError, match="not attempted") as info:
        bias_act(torch.randn(2, 3), impl="cpu")
    assert expected in str(info.value)


def test_cuda_toolkit_problems_are_diagnosed(tmp_path):
    if torch.version.cuda is None:
        assert "no CUDA support" in _build._diagnose_cuda("/usr/local/cuda")[0]
        return
    assert "set CUDA_HOME" in _build._diagnose_cuda(None)[0]
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvcc").write_text("#!/bin/sh\n")  # an nvcc wrapper without the toolkit beside it
    (problem,) = _build._diagnose_cuda(str(tmp_path))
    assert "missing CUDA headers" in problem and "cuda_runtime_api.h" in problem


def test_auto_warns_once_and_falls_back_to_the_reference(fresh_builds, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    calls = []
    build = _build.build
    monkeypatch.setattr(_build, "build", lambda *a, **k: calls.append(a) or build(*a, **k))
    x = torch.randn(2, 3, 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            torch.testing.assert_close(upfirdn2d(x, F, down=2, impl="auto"), upfirdn2d_ref(x, F, down=2))
            torch.testing.assert_close(bias_act(x, act="lrelu"), bias_act_ref(x, act="lrelu"))
    fallbacks = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(fallbacks) == 1 and "shown once" in str(fallbacks[0].message)
    assert "no C++ compiler" in str(fallbacks[0].message)
    assert sorted(calls) == [("bias_act", "cpu"), ("upfirdn2d", "cpu")]  # failures are cached: one try each


@pytest.mark.slow
def test_cuda_sources_compile_with_nvcc(tmp_path):
    """Compiles csrc/*.cu with nvcc (no GPU needed); .ci/run sets DDGAN_REQUIRE_NVCC=1 so it cannot skip."""
    if shutil.which("nvcc") is None and not os.environ.get("CUDA_HOME"):
        if os.environ.get("DDGAN_REQUIRE_NVCC") == "1":
            pytest.fail("DDGAN_REQUIRE_NVCC=1 but neither nvcc on PATH nor CUDA_HOME is set")
        pytest.skip("no CUDA toolkit on this machine (set CUDA_HOME or put nvcc on PATH)")
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(tmp_path))
    env.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    script = "from ddgan_ref.ops import _build\nfor op in _build.CUDA_OPS:\n    print(op, _build.extension(op, 'cuda'))"
    run = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=1200)
    assert run.returncode == 0, f"nvcc build failed:\n{run.stdout}\n{run.stderr}"
    for op in _build.CUDA_OPS:
        assert f"ddgan_{op}_cuda.so" in run.stdout, run.stdout
