"""Files every model family shares: atomic writes, weights-only loads, the checkpoint form, the config codec, and
the rules of resuming and of stopping a diverged run before it overwrites its last good checkpoint.

A checkpoint of any family is {format, format_version, config, state_dict, meta, **extra}: `format` names the
family, `config` is the run's config as `config_to_dict` writes it, `state_dict` is the network that samples
(the EMA one where there is one) and the extra entries hold what a resume needs (`train_state`). Nothing
here executes code from a file: every load is torch.load(weights_only=True), with an explicit allow-list
of extra globals. Writes go to a temporary file in the same folder and are renamed into place, so a kill
never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import re
import types
import typing
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, asdict, fields, is_dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map

FORMAT_VERSION = 1  # of the shared checkpoint form
CONFIG_VERSION = 1  # of config_to_dict's output
UNVERSIONED = 1  # the version of configs written before config_version was recorded (DDPM, StyleGAN2)
FORM_KEYS = ("format", "format_version", "config", "state_dict", "meta")
# Train fields a resumed run may change: the baselines' step budget and the checkpoint interval. DDGAN's num_epoch
# is not one: it is the length of the cosine learning-rate schedule that the checkpoint's scheduler state holds.
RESUME_FREE = ("steps", "checkpoint_every")
C = TypeVar("C")


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint of the expected kind, or not one this run can resume."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose tensors do not fit the architecture it is loaded into."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """A checkpoint path with no file behind it."""


class TrainingDiverged(RuntimeError):
    """A loss or weight became NaN or infinite; the run stopped and its last good checkpoint was kept."""


class Checkpoint(NamedTuple):
    """The parts of a checkpoint file: config (a dict, or the family's config once decoded), weights, meta, extra."""

    config: Any
    state_dict: dict[str, Tensor]
    meta: dict[str, Any]
    extra: dict[str, Any]


# Atomic writes.


def _replace_atomically(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """write() into a temporary file beside `path`, fsync, then rename over `path`; the old file survives a failure."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a folder of the path should be
        blocking = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()),
                        path.parent)
        raise NotADirectoryError(f"cannot write {path}: {blocking} is a file, not a folder; choose another "
                                 f"path") from None
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        try:
            f = tmp.open("wb")
        except OSError as e:
            raise type(e)(e.errno, f"cannot write {path}: {e.strerror}; choose a writable folder") from None
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a read-only file system refuses even the unlink of a missing file
            tmp.unlink(missing_ok=True)
        raise
    return path


def save_atomic(obj: Any, path: str | Path) -> Path:
    """torch.save `obj` to `path` atomically (temporary file, fsync, rename)."""
    return _replace_atomically(path, lambda f: torch.save(obj, f))


def write_bytes_atomic(data: bytes, path: str | Path) -> Path:
    """Write `data` to `path` atomically, for files taken out of archives."""
    return _replace_atomically(path, lambda f: f.write(data))


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write `obj` as indented JSON to `path` atomically, for configs and result records."""
    return _replace_atomically(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


def read_json(path: str | Path, error: type[Exception], fix: str, what: str = "JSON") -> Any:
    """The JSON document at `path`; a missing, unreadable or truncated file raises `error` with `fix` (what to
    do about it), so each reader keeps its own error class and advice."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise error(f"{path}: no such file; {fix}") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path}: not readable {what} ({e}); {fix}") from e


# Weights-only loads.


# The files that make a folder a diffusers model (a UNet2DModel folder, or a pipeline with unet/): what the error
# for a folder given as a checkpoint, and bench.convert, look for.
DIFFUSERS_MARKERS = ("config.json", "unet/config.json", "model_index.json")


def load_file(path: str | Path, *, safe_globals: Iterable[type] = (), mmap: bool = False) -> Any:
    """torch.load(weights_only=True) on CPU, admitting `safe_globals`; CheckpointError for missing or broken files."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.pt*"))[:4]
        diffusers = any((path / m).is_file() for m in DIFFUSERS_MARKERS)
        raise CheckpointError(f"checkpoint {path} is a folder; pass the .pt/.pth file in it"
                              + (f" (it holds {', '.join(inside)})" if inside else "")
                              + ("; a diffusers model folder converts to a checkpoint with: python -m bench.convert "
                                 "FOLDER --out FILE.pt" if diffusers else ""))
    if not path.is_file():
        raise MissingCheckpointError(f"checkpoint {path} does not exist; pass the path of a .pt/.pth file")
    mmap = mmap and zipfile.is_zipfile(path)  # files in the legacy (pre-1.6) format load whole: mmap needs a zip
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            raise CheckpointError(
                f"{path}: refusing to load: the file holds Python objects outside the allow-list "
                f"(loading them could execute code). Re-save it as a plain state dict"
                + _official_hint(path, str(e))) from None
        raise CheckpointError(_broken(path)) from e
    except Exception as e:  # torch.load reports a broken file as any of several types
        newer = re.search(r"file with version (\d+), but the maximum supported version for reading is (\d+)", str(e))
        if newer:
            raise CheckpointError(f"{path}: written by a newer PyTorch (file format version {newer[1]}; this torch "
                                  f"{torch.__version__} reads up to {newer[2]}): upgrade torch, or re-save the file "
                                  f"with this version") from e
        raise CheckpointError(_broken(path)) from e


def _official_hint(path: Path, refusal: str) -> str:
    """The end of an allow-list refusal: where the file is an official pickle or content.pth (which holds an
    argparse.Namespace), the command that converts it."""
    if path.suffix.lower() == ".pkl":
        return ("; a stylegan2-ada-pytorch pickle converts to a checkpoint with: python -m bench.convert FILE.pkl "
                "--out FILE.pt")
    if "argparse.Namespace" in refusal:
        return ("; an official DDGAN content.pth converts to a checkpoint with: python -m bench.convert FILE --out "
                "FILE.pt")
    return "."


def _broken(path: Path) -> str:
    return (f"{path}: cannot read this checkpoint: the file is truncated, corrupt or not a PyTorch checkpoint "
            f"({path.stat().st_size} bytes). Re-download or re-create it.")


def peek_format(path: str | Path) -> str | None:
    """The `format` field of one of our checkpoints (None for other torch files), read without loading the tensors."""
    obj = load_file(path, mmap=True)
    fmt = obj.get("format") if isinstance(obj, dict) else None
    return fmt if isinstance(fmt, str) else None


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_fits(module: nn.Module, state_dict: Mapping[str, Tensor], what: str) -> None:
    """Raise CheckpointMismatchError naming missing, unexpected and mis-shaped keys, if any."""
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    shaped = [f"{k} (checkpoint {list(have[k])}, model {list(want[k])})"
              for k in want if k in have and have[k] != want[k]]
    if not (missing or unexpected or shaped):
        return
    lines = [f"{what} does not fit the {type(module).__name__} architecture it is loaded into:"]
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", shaped)):
        if keys:
            lines.append(f"  {label} ({len(keys)}): {_listing(keys)}")
    lines.append("Build the model with the config the checkpoint was trained with (its preset), or convert it.")
    raise CheckpointMismatchError("\n".join(lines))


def load_into(module: nn.Module, state_dict: Mapping[str, Tensor], what: str) -> nn.Module:
    """check_fits, then load_state_dict(strict=True); returns `module`."""
    check_fits(module, state_dict, what)
    module.load_state_dict(state_dict, strict=True)
    return module


# The checkpoint form.


def write_checkpoint(path: str | Path, fmt: str, config: Mapping[str, Any], state_dict: Mapping[str, Tensor],
                     meta: Mapping[str, Any], **extra: Any) -> Path:
    """Write {format, format_version, config, state_dict, meta, **extra} atomically; config as config_to_dict gives.
    Tensors are stored contiguous whatever layout the run trained in (channels-last), so every reader of the
    file (the official code, safetensors) takes it as it is."""
    payload = {"format": fmt, "format_version": FORMAT_VERSION, "config": dict(config),
               "state_dict": dict(state_dict), "meta": dict(meta), **extra}
    return save_atomic(tree_map(lambda v: v.contiguous() if isinstance(v, Tensor) else v, payload), path)


def parse_checkpoint(obj: Any, path: str | Path, fmt: str, *, upgrade: Callable[[dict], dict] | None = None,
                     config_cls: type | None = None, hint: str = "") -> Checkpoint:
    """The parts of a loaded checkpoint of format `fmt`; `upgrade` turns a file without format_version into the form;
    with `config_cls` the config comes back decoded (config_from_dict), else as the stored dict."""
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise CheckpointError(f"{path}: not a DDGAN-Bench checkpoint (expected a dict with format={fmt!r} and keys "
                              f"config, state_dict, meta; found {_describe(obj)}).{hint}")
    if "format_version" not in obj and upgrade is not None:
        obj = upgrade(obj)
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {obj.get('format_version')} is not "
                              f"supported by this build (it reads {FORMAT_VERSION})")
    if missing := [k for k in FORM_KEYS if k not in obj]:
        raise CheckpointError(f"{path}: a {fmt!r} checkpoint without {missing}: it was not written by DDGAN-Bench or "
                              f"has been edited; re-create it")
    extra = {k: v for k, v in obj.items() if k not in FORM_KEYS}
    try:
        config = obj["config"] if config_cls is None else config_from_dict(config_cls, obj["config"])
    except ValueError as e:
        raise CheckpointError(f"{path}: its config does not decode: {e}") from e
    return Checkpoint(config, obj["state_dict"], obj["meta"], extra)


def _describe(obj: Any) -> str:
    if not isinstance(obj, dict):
        return type(obj).__name__
    if isinstance(obj.get("format"), str):
        return f"a {obj['format']!r} checkpoint"
    return f"a dict with keys {sorted(map(str, obj))[:6]}"


def read_checkpoint(path: str | Path, fmt: str, *, upgrade: Callable[[dict], dict] | None = None,
                    config_cls: type | None = None, mmap: bool = False) -> Checkpoint:
    """The parts of checkpoint file `path` of format `fmt` (the config decoded into `config_cls` when given; with
    mmap the tensors stay on disk until read)."""
    return parse_checkpoint(load_file(path, mmap=mmap), path, fmt, upgrade=upgrade, config_cls=config_cls)


# The config codec: nested frozen dataclasses <-> JSON-able dicts, driven by the fields' type hints.


def config_to_dict(config: Any, *, version: int = CONFIG_VERSION) -> dict[str, Any]:
    """Plain nested dict of a frozen dataclass config (tuples as lists) with its config_version."""
    return {"config_version": version, **_plain(asdict(config))}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_from_dict(cls: type[C], d: Mapping[str, Any], *, version: int = CONFIG_VERSION) -> C:
    """Inverse of config_to_dict; unknown keys, arch values and versions are a ValueError naming the choices."""
    values = dict(d)
    found = values.pop("config_version", UNVERSIONED)
    if found != version:
        raise ValueError(f"{cls.__name__}: config_version {found} is not supported (this build reads {version}); "
                         f"use the version of the code that wrote it")
    return _section(cls, values, "config")


def _section(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, Mapping):
        raise ValueError(f"{where} must be a dict of {cls.__name__} fields; got {type(values).__name__}")
    hints, names = typing.get_type_hints(cls), [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; known: {sorted(names)}")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    if missing := [k for k in required if k not in values]:
        raise ValueError(f"{where} lacks the keys {missing} ({cls.__name__} has no default for them)")
    return cls(**{k: _decode(hints[k], v, f"{where}.{k}") for k, v in values.items()})


SCALARS: dict[type, type | tuple[type, ...]] = {int: int, float: (int, float), str: str, bool: bool}  # JSON 1 is 1.0


def _decode(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if is_dataclass(hint):
        return _section(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        if len(options) > 1 and all(is_dataclass(a) for a in options):
            return _section(_by_arch(options, value, where), value, where)
        return _decode(options[0], value, where) if len(options) == 1 else value
    if origin is typing.Literal and value not in args:
        raise ValueError(f"{where} is {value!r}; choose from {list(args)}")
    if hint in SCALARS and (not isinstance(value, SCALARS[hint]) or hint is not bool and isinstance(value, bool)):
        raise ValueError(f"{where} is {value!r}, a {type(value).__name__}; it must be of type {hint.__name__}")
    return tuple(value) if origin is tuple else value


def _by_arch(options: list[type], values: Any, where: str) -> type:
    """The member of a union of configs whose `arch` Literal holds values['arch']."""
    archs = {a: cls for cls in options for a in typing.get_args(typing.get_type_hints(cls)["arch"])}
    arch = values.get("arch") if isinstance(values, Mapping) else None
    if arch not in archs:
        raise ValueError(f"{where} has arch={arch!r}; choose from {sorted(archs)}")
    return archs[arch]


# Resuming.


def resumable(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config_to_dict dict without the train fields that do not block a resume (RESUME_FREE)."""
    train = {k: v for k, v in config.get("train", {}).items() if k not in RESUME_FREE}
    return {**config, "train": train}


def differences(a: Any, b: Any, where: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted field, value in a, value in b) of every field where two nested dicts differ."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = [*a, *(k for k in b if k not in a)]
        return [d for key in keys for d in differences(a.get(key, "<absent>"), b.get(key, "<absent>"),
                                                       f"{where}.{key}".lstrip("."))]
    return [] if a == b else [(where, a, b)]


def check_resumable(saved: Any, config: Any, path: str | Path) -> None:
    """CheckpointError unless the run in `path` (config `saved`) can be resumed under `config`; it names every
    field that differs (bookkeeping fields, RESUME_FREE, never block a resume)."""
    diffs = differences(resumable(config_to_dict(saved)), resumable(config_to_dict(config)))
    if diffs:
        listed = "; ".join(f"{field} = {was!r} there, {now!r} now" for field, was, now in diffs)
        raise CheckpointError(f"{path} holds another run, its config differs: {listed}. Resume with the same preset "
                              f"and options, or use another output folder.")


def check_finite(step: int, ckpt: Path, advice: str, *, losses: Mapping[str, float] | None = None,
                 modules: Iterable[nn.Module] = ()) -> None:
    """Stop a run with TrainingDiverged when a loss or a floating-point tensor of `modules` is NaN or infinite at
    `step`; called before each checkpoint write, so `ckpt` keeps its last good state. The message says whether
    there is one and what to change (`advice`)."""
    bad = {k: v for k, v in (losses or {}).items() if not math.isfinite(v)}
    broken = [f"{type(m).__name__}.{k}" for m in modules for k, t in m.state_dict().items()
              if t.is_floating_point() and not t.isfinite().all()]
    if not bad and not broken:
        return
    what = f"non-finite loss {bad}" if bad else f"non-finite weights ({_listing(broken, 3)})"
    kept = f"the last good checkpoint {ckpt} is kept" if ckpt.exists() else "no checkpoint had been written yet"
    raise TrainingDiverged(f"training diverged at step {step}: {what}; stopped, {kept}. {advice}, then resume "
                           f"(--resume) or restart.")
