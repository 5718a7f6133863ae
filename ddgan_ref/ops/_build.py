"""The only place that compiles csrc/: lazy, cached `torch.utils.cpp_extension.load` with diagnosed failures."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

_HERE = Path(__file__).resolve().parent
# A source checkout (editable install) compiles csrc/ itself; a wheel carries a copy in ddgan_ref/ops/csrc.
CSRC = next((p for p in (_HERE.parents[1] / "csrc", _HERE / "csrc") if (p / "upfirdn2d.cpp").is_file()),
            _HERE.parents[1] / "csrc")
SOURCES: dict[str, tuple[str, ...]] = {
    "upfirdn2d": ("upfirdn2d.cpp", "upfirdn2d_cpu.cpp"),
    "bias_act": ("bias_act.cpp", "bias_act_cpu.cpp"),
    "neighbours": ("neighbours.cpp", "neighbours_cpu.cpp"),  # CPU only: bench.metrics.prdc's first pass
    "draw_rows": ("draw_rows.cpp",),  # CPU only: ddgan_ref.rng.SeedStream's per-row draws
}
VARIANTS: tuple[str, ...] = ("cpu", "cuda")  # "cuda" adds csrc/<op>.cu and builds the CPU kernel too
CUDA_OPS: tuple[str, ...] = ("upfirdn2d", "bias_act")  # the ops with a csrc/<op>.cu
# OpenMP makes at::parallel_for use threads; -fno-trapping-math lets branchy elementwise loops vectorise.
CXX_FLAGS: tuple[str, ...] = ("-O3", "-fopenmp", "-fno-trapping-math")
# No --use_fast_math: its approximate tanh is not accurate enough for the float32 derivative tests (results/README.md,
# "No --use_fast_math"), and these memory-bound kernels gain nothing from it.
CUDA_FLAGS: tuple[str, ...] = ("-O3",)
DEFAULT_CUDA_ARCHS = "8.0;8.6;9.0"  # used only when TORCH_CUDA_ARCH_LIST is unset and no GPU is visible

_BUILT: dict[tuple[str, str], ModuleType | KernelBuildError] = {}


class KernelBuildError(RuntimeError):
    """A csrc/ extension could not be built or loaded; carries the diagnosis and the build log."""

    def __init__(self, op: str, variant: str, diagnosis: list[str], log: str, csrc: Path):
        self.op, self.variant, self.diagnosis, self.log = op, variant, diagnosis, log
        found = "\n".join(f"  - {d}" for d in diagnosis) or "  - no missing prerequisite found; see the log"
        super().__init__(
            f"could not build the {variant} kernel of {op} from {csrc}.\nDiagnosis:\n{found}\n"
            f"Build log:\n{log.strip() or '(empty)'}\n"
            "Use impl='ref' (or 'auto', which falls back to the reference) to run without compiled kernels; "
            "set DDGAN_KERNELS_VERBOSE=1 to see the full compiler output."
        )


def extension(op: str, variant: str) -> ModuleType:
    """The compiled module of `op` for `variant` ("cpu" or "cuda"): built on first use, then cached.

    A failure is cached too (and re-raised), so a broken toolchain costs one build attempt per process.
    """
    key = (op, variant)
    if key not in _BUILT:
        try:
            _BUILT[key] = build(op, variant)
        except KernelBuildError as error:
            _BUILT[key] = error
    result = _BUILT[key]
    if isinstance(result, KernelBuildError):
        raise result
    return result


def failure(op: str, variant: str) -> KernelBuildError | None:
    """The cached build error of `op`/`variant`, or None if it built or was never tried."""
    result = _BUILT.get((op, variant))
    return result if isinstance(result, KernelBuildError) else None


def build(op: str, variant: str, csrc: Path | None = None) -> ModuleType:
    """Compile and load csrc/<op> (default CSRC) for `variant` with ninja; raise KernelBuildError with a diagnosis."""
    csrc = CSRC if csrc is None else csrc
    if op not in SOURCES or variant not in VARIANTS or (variant == "cuda" and op not in CUDA_OPS):
        raise ValueError(f"unknown kernel {op!r}/{variant!r}; ops {sorted(SOURCES)}, variants {list(VARIANTS)}, "
                         f"CUDA for {list(CUDA_OPS)}")
    problems = diagnose(op, variant, csrc)
    if problems:
        raise KernelBuildError(op, variant, problems, log="(not attempted: prerequisites missing)", csrc=csrc)
    cpp_extension = _cpp_extension()
    cuda = variant == "cuda"
    sources = [str(csrc / s) for s in SOURCES[op]] + ([str(csrc / f"{op}.cu")] if cuda else [])
    defines = ["-DDDGAN_WITH_CUDA"] if cuda else []
    name = f"ddgan_{op}_{variant}"
    _announce(cpp_extension, name, op, variant)
    try:
        with _cuda_arch_list(cuda):
            module = cpp_extension.load(
                name=name, sources=sources, extra_cflags=[*CXX_FLAGS, *defines],
                extra_ldflags=["-fopenmp"], extra_cuda_cflags=[*CUDA_FLAGS, *defines], with_cuda=cuda,
                verbose=os.environ.get("DDGAN_KERNELS_VERBOSE") == "1",
            )
    except (RuntimeError, OSError, ImportError, IndexError, ValueError) as error:
        raise KernelBuildError(op, variant, diagnose(op, variant, csrc), log=str(error), csrc=csrc) from error
    return module  # the object load() returns; never re-imported by name (pybind11 3 modules are not in sys.modules)


def _announce(cpp_extension: ModuleType, name: str, op: str, variant: str) -> None:
    """A first build takes tens of seconds (minutes for CUDA): say so before it starts; a cached one loads silently."""
    try:
        folder = Path(cpp_extension._get_build_directory(name, False))  # private; the folder load() builds in
    except Exception:  # its absence only costs the message's accuracy
        folder = None
    if folder is None or not any(folder.glob(f"{name}*.so")):
        print(f"building the {op} {variant.upper()} kernel with ninja (about 30 s on 2 CPU cores, minutes for CUDA; "
              f"once, then cached in {folder or 'the torch extensions folder'})", file=sys.stderr)


def diagnose(op: str, variant: str, csrc: Path | None = None) -> list[str]:
    """Missing prerequisites for building `op`: sources, C++ compiler, ninja, torch headers, CUDA toolkit."""
    csrc = CSRC if csrc is None else csrc
    problems = [f"missing source {csrc / s}" for s in _sources(op, variant) if not (csrc / s).is_file()]
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx.split()[0] if cxx.strip() else "c++") is None:  # CXX may be "ccache g++"
        problems.append(f"no C++ compiler: {cxx!r} is not on PATH (install g++ or clang, or set CXX)")
    if shutil.which("ninja") is None:
        problems.append("no ninja: install it with `pip install ninja` (torch builds extensions with ninja)")
    cpp_extension = _cpp_extension()
    if not any(Path(p, "torch", "extension.h").is_file() for p in cpp_extension.include_paths()):
        problems.append("torch's C++ headers are missing from this install (torch/extension.h not found)")
    if variant == "cuda":
        problems += _diagnose_cuda(cpp_extension.CUDA_HOME)
    return problems


def _cpp_extension() -> ModuleType:
    """torch.utils.cpp_extension, imported without its "No CUDA runtime is found" warning on CPU machines
    (a CUDA build problem is reported by diagnose() instead)."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)
    return cpp_extension


def _sources(op: str, variant: str) -> tuple[str, ...]:
    return SOURCES[op] + ((f"{op}.cu",) if variant == "cuda" else ())


def _diagnose_cuda(cuda_home: str | None) -> list[str]:
    if torch.version.cuda is None:
        return ["this torch build has no CUDA support (torch.version.cuda is None); install a CUDA build of torch"]
    if not cuda_home:
        return ["no CUDA toolkit found: set CUDA_HOME to the toolkit root (the folder with bin/nvcc)"]
    home = Path(cuda_home)
    problems = []
    if not (home / "bin" / "nvcc").is_file():
        problems.append(f"no nvcc at {home / 'bin' / 'nvcc'}: set CUDA_HOME to the CUDA toolkit root")
    if not (home / "include" / "cuda_runtime_api.h").is_file():
        problems.append(
            f"missing CUDA headers: {home / 'include' / 'cuda_runtime_api.h'} does not exist. CUDA_HOME={home} is "
            "probably a folder holding an nvcc wrapper, not the toolkit; set CUDA_HOME to the toolkit root"
        )
    return problems


@contextlib.contextmanager
def _cuda_arch_list(cuda: bool) -> Iterator[None]:
    """Set TORCH_CUDA_ARCH_LIST for the build when unset: the visible GPUs' archs, else DEFAULT_CUDA_ARCHS."""
    if not cuda or os.environ.get("TORCH_CUDA_ARCH_LIST"):
        yield
        return
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    archs = sorted({"{}.{}".format(*torch.cuda.get_device_capability(i)) for i in range(n)})
    os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(archs) or DEFAULT_CUDA_ARCHS
    try:
        yield
    finally:
        del os.environ["TORCH_CUDA_ARCH_LIST"]
