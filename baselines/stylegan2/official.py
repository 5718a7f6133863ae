"""Official stylegan2-ada-pytorch `.pkl` checkpoints, loaded without dnnlib/torch_utils and without running
any code stored in the pickle (spec baselines.md 2.7).

The official pickles store each network as `torch_utils.persistence._reconstruct_persistent_obj(meta)`, where
`meta` holds the defining module's source (which the official loader exec's), the constructor kwargs and the
instance state. Our unpickler admits an allow-list of globals only: that function becomes a stub that keeps
`meta`, `dnnlib.util.EasyDict` becomes a dict, tensors and parameters are rebuilt by torch's own helpers, and
nested storages are read with torch.load(weights_only=True). Anything else (os.system, builtins.eval, ...) is
refused before it is called. The networks are then rebuilt from `_init_kwargs` with our classes.
"""

from __future__ import annotations

import codecs
import collections
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from baselines.stylegan2.configs import StyleGAN2Config
from baselines.stylegan2.networks import Discriminator, Generator
from ddgan_ref.io import CheckpointError, load_into


class UnsafePickleError(CheckpointError):
    """The pickle asks for a global outside the allow-list (it would run code if unpickled normally)."""


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict: a plain dict."""


class Persistent:
    """Stand-in for a torch_utils.persistence object: keeps its meta (class name, init kwargs, state)."""

    def __init__(self, meta: dict[str, Any]):
        self.meta = meta

    @property
    def class_name(self) -> str:
        return self.meta.get("class_name", "?")


def _load_storage(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


_numpy_scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar  # numpy 2 or 1

ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): Persistent,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch", "Size"): torch.Size,
    ("builtins", "set"): set,  # a module's _non_persistent_buffers_set, as pickle protocols 2-3 (Python 3.7) write it
    ("_codecs", "encode"): codecs.encode,  # bytes under protocol 2
    # Upstream's layers keep numpy scalar gains (act_gain = np.sqrt(2), weight_gain = lr_multiplier / np.sqrt(n)):
    # numbers rebuilt from a dtype and raw bytes, under numpy 1's module name and numpy 2's.
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): np.dtype,
}


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise UnsafePickleError(f"refusing to load {module}.{name}: the pickle asks for a global outside the "
                                    f"allow-list of stylegan2-ada-pytorch checkpoints (it could run code)")
        return ALLOWED[(module, name)]


def read_pkl(path: str | Path) -> dict[str, Any]:
    """The top-level dict of an official pickle, networks as Persistent stubs; nothing from it is executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        with open(path, "rb") as f:
            data = _AllowListUnpickler(f).load()
    except UnsafePickleError:
        raise
    except Exception as error:
        raise CheckpointError(f"cannot read {path} as a stylegan2-ada-pytorch pickle (truncated or another "
                              f"format): {error!r}") from error
    if not isinstance(data, dict) or not any(isinstance(v, Persistent) for v in data.values()):
        found = f"keys {sorted(map(str, data))[:8]}" if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} holds no stylegan2-ada-pytorch networks (found {found}); pass a network "
                              f"pickle such as stylegan2-cifar10-32x32.pkl")
    return data


def state_dict_of(obj: Persistent, prefix: str = "") -> dict[str, Tensor]:
    """The flat state_dict of a persistent module tree (parameters, buffers, submodules)."""
    state = obj.meta["state"]
    out = {prefix + k: v.detach() for k, v in state.get("_parameters", {}).items() if v is not None}
    out |= {prefix + k: v for k, v in state.get("_buffers", {}).items() if v is not None}
    for name, sub in state.get("_modules", {}).items():
        if sub is not None:
            out |= state_dict_of(sub, f"{prefix}{name}.")
    return out


BUILDERS = {"Generator": Generator, "Discriminator": Discriminator}


def init_kwargs(obj: Persistent) -> dict[str, Any]:
    """The constructor kwargs a persistent network was built with (EasyDicts as dicts)."""
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in obj.meta["state"].get("_init_kwargs", {}).items()}


def build_network(obj: Persistent) -> nn.Module:
    """Our module for a persistent Generator/Discriminator, built from its _init_kwargs, weights loaded."""
    if obj.class_name not in BUILDERS:
        raise CheckpointError(f"unsupported network class {obj.class_name!r}; expected one of {sorted(BUILDERS)}")
    state, kwargs = obj.meta["state"], init_kwargs(obj)
    try:
        net = BUILDERS[obj.class_name](*state.get("_init_args", ()), **kwargs)
    except TypeError as error:
        raise CheckpointError(f"{obj.class_name} kwargs {sorted(kwargs)} do not fit our implementation: "
                              f"{error}") from error
    load_into(net, state_dict_of(obj), f"official {obj.class_name}")
    return net.eval()


def load_official_pkl(path: str | Path) -> tuple[Generator, Discriminator | None, Generator | None]:
    """(G, D, G_ema) of an official stylegan2-ada-pytorch training pickle, as our modules (eval mode)."""
    data = read_pkl(path)
    nets = {k: build_network(v) for k, v in data.items() if k in ("G", "D", "G_ema") and isinstance(v, Persistent)}
    if nets.get("G") is None and nets.get("G_ema") is None:
        raise CheckpointError(f"{path} has neither 'G' nor 'G_ema'")
    return nets.get("G"), nets.get("D"), nets.get("G_ema")


def from_official_pkl(path: str | Path) -> tuple[StyleGAN2Config, dict[str, Tensor]]:
    """(config, G_ema state_dict) of an official training pickle, for our checkpoint form: the config's G and D are
    the pickled networks' constructor kwargs, the weights G_ema's (G's where the pickle has no G_ema). A
    class-conditional network is refused: the suite samples unconditional models."""
    data = read_pkl(path)
    nets = {k: v for k, v in data.items() if k in ("G", "D", "G_ema") and isinstance(v, Persistent)}
    source = nets.get("G_ema") or nets.get("G")
    if source is None:
        raise CheckpointError(f"{path} has neither 'G' nor 'G_ema'")
    G = init_kwargs(source)
    if G.get("c_dim", 0):
        raise CheckpointError(f"{path}: a class-conditional generator (c_dim={G['c_dim']}); the suite samples "
                              f"unconditional models: pass a pickle trained without --cond")
    D = init_kwargs(nets["D"]) if "D" in nets else {"c_dim": 0, "img_resolution": G.get("img_resolution"),
                                                     "img_channels": G.get("img_channels")}
    shape = (G.get("img_channels"), G.get("img_resolution"), G.get("img_resolution"))
    config = StyleGAN2Config(f"official:{Path(path).name}", "cifar10" if shape == (3, 32, 32) else "unknown",
                             shape, G=G, D=D)
    return config, build_network(source).state_dict()
