"""Python face of the compiled neighbours kernel (csrc/neighbours*.cpp), the first pass of bench.metrics.prdc."""

from __future__ import annotations

from types import ModuleType

from torch import Tensor

from ddgan_ref.ops import _build
from ddgan_ref.ops._impl import Impl, resolve


def neighbours_kernel(features: Tensor, impl: Impl | None = None) -> ModuleType | None:
    """The compiled kernel that runs the first pass over blocks of `features` [N, D], or None where its torch-ops
    twin (bench.metrics.neighbours) runs instead.

    `impl`: "auto" (the kernel for float32 features on the CPU when it builds, else None, with one warning
    after a failed build), "cpu" (the kernel, or an error with the build log, or saying why `features` do not
    fit it), "ref" (None), None (the `using()` default; "cuda" there means "auto"). The kernel has two entry
    points, `knn_update` (merge a block into nearest-candidate lists) and `classify` (a block's ball-membership
    tests), each checking its arguments by name. This returns the kernel rather than wrapping them in dispatching
    functions because the choice is made once per feature set and then serves thousands of blocks, and because
    the twin is not one call of the same signature but several torch passes that the metric owns.
    """
    if resolve(impl, features, "neighbours") == "cpu":
        return _build.extension("neighbours", "cpu")
    return None
