"""ddgan_ref.ops.neighbours_kernel: the impl rules of every op for the CPU-only, float32-only kernel of prdc's first
pass: "cpu" gives the kernel or raises saying why, "ref" gives None (the torch twin), "auto" falls back warning once."""

from __future__ import annotations

import warnings

import pytest
import torch

from ddgan_ref.ops import KernelBuildError, neighbours_kernel, using

X = torch.randn(16, 8)


def test_cpu_and_auto_give_the_compiled_kernel_with_its_two_entry_points():
    kernel = neighbours_kernel(X, "cpu")
    assert callable(kernel.knn_update) and callable(kernel.classify)
    assert neighbours_kernel(X, "auto") is kernel and neighbours_kernel(X) is kernel  # "auto" outside using()
    with using("cpu"):
        assert neighbours_kernel(X) is kernel


def test_ref_gives_the_torch_twin():
    assert neighbours_kernel(X, "ref") is None
    with using("ref"):
        assert neighbours_kernel(X) is None


@pytest.mark.parametrize(("features", "message"), [
    (X.double(), r"neighbours: the cpu kernel supports \['torch.float32'\], got torch.float64"),
    (X.half(), r"neighbours: the cpu kernel supports \['torch.float32'\], got torch.float16"),
    (X.to("meta"), "neighbours: impl='cpu' runs on cpu tensors, but x is on meta"),
], ids=["float64", "float16", "meta-device"])
def test_explicit_cpu_on_features_it_cannot_take_raises_and_auto_takes_the_twin_silently(features, message):
    with pytest.raises(RuntimeError, match=message):
        neighbours_kernel(features, "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a declared capability, not a failure: no warning
        assert neighbours_kernel(features, "auto") is None


def test_there_is_no_gpu_kernel_to_ask_for_by_name_and_a_gpu_block_runs_as_auto():
    with pytest.raises(RuntimeError, match=r"neighbours: there is no cuda kernel \(compiled: \['cpu'\]\)"):
        neighbours_kernel(X, "cuda")
    with using("cuda"):  # a block asking for the GPU kernels: the metrics' CPU features still get the CPU kernel
        assert neighbours_kernel(X) is neighbours_kernel(X, "cpu")
        assert neighbours_kernel(X.double()) is None


@pytest.mark.cuda
def test_cuda_features_raise_for_cpu_and_take_the_twin_for_auto():
    with pytest.raises(RuntimeError, match="runs on cpu tensors, but x is on cuda"):
        neighbours_kernel(X.cuda(), "cpu")
    assert neighbours_kernel(X.cuda(), "auto") is None


def test_failed_build_raises_with_the_log_for_cpu_and_warns_once_for_auto(fresh_builds, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    with pytest.raises(KernelBuildError, match=r"no C\+\+ compiler") as info:
        neighbours_kernel(X, "cpu")
    assert "Build log:" in str(info.value) and "impl='ref'" in str(info.value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert neighbours_kernel(X, "auto") is None and neighbours_kernel(X, "auto") is None
    (fallback,) = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert "shown once" in str(fallback.message) and "no C++ compiler" in str(fallback.message)
