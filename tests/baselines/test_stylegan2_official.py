"""Official stylegan2-ada-pytorch pickles: a pickle written the way the official code writes one (persistent
objects holding module source, EasyDict kwargs, tensors) loads into our networks without dnnlib/torch_utils,
and a crafted malicious pickle is refused without running anything."""

from __future__ import annotations

import os
import pickle
import sys
import types
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from baselines.stylegan2 import official
from baselines.stylegan2.networks import Discriminator, Generator
from ddgan_ref.io import CheckpointError

G_KWARGS = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs={"num_layers": 2},
                synthesis_kwargs={"channel_base": 64, "channel_max": 16, "num_fp16_res": 0, "conv_clamp": 256})
D_KWARGS = dict(c_dim=0, img_resolution=8, img_channels=3, architecture="resnet", channel_base=64, channel_max=16,
                epilogue_kwargs={"mbstd_group_size": 2})


@contextmanager
def fake_upstream_modules():
    """Stand-ins for dnnlib.util and torch_utils.persistence, present only while the test pickle is written."""
    persistence, util = types.ModuleType("torch_utils.persistence"), types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # the official one exec's meta["module_src"]
        raise AssertionError("the official reconstruct function must never be called")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__, EasyDict.__module__ = "torch_utils.persistence", "dnnlib.util"
    _reconstruct_persistent_obj.__qualname__, EasyDict.__qualname__ = "_reconstruct_persistent_obj", "EasyDict"
    persistence._reconstruct_persistent_obj, util.EasyDict = _reconstruct_persistent_obj, EasyDict
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")}
    sys.modules.update({"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
                        "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util})
    try:
        yield _reconstruct_persistent_obj, EasyDict
    finally:
        for k, v in saved.items():
            sys.modules.pop(k) if v is None else sys.modules.__setitem__(k, v)


def persistent(module: torch.nn.Module, reconstruct, easydict, init_kwargs=None):
    """An object that pickles like a torch_utils.persistence instance of `module`."""
    state = dict(module.__dict__)  # upstream pickles the module's whole __dict__: hooks, _non_persistent_buffers_set
    state["_modules"] = {k: persistent(m, reconstruct, easydict) for k, m in module._modules.items()}
    state["act_gain"] = np.sqrt(2)  # upstream's layers keep numpy scalar gains among their attributes
    if init_kwargs is not None:
        state["_init_args"], state["_init_kwargs"] = (), easydict(init_kwargs)
    meta = {"type": "class", "version": 6, "module_src": "import os\nos.system('echo pwned')\n",
            "class_name": type(module).__name__, "state": state}

    class Reduced:
        def __reduce__(self):
            return reconstruct, (meta,)

    return Reduced()


def write_official_like_pkl(path):
    torch.manual_seed(0)
    G, D = Generator(**G_KWARGS).eval(), Discriminator(**D_KWARGS).eval()
    with fake_upstream_modules() as (reconstruct, easydict):
        data = {"G": persistent(G, reconstruct, easydict, G_KWARGS),
                "D": persistent(D, reconstruct, easydict, D_KWARGS),
                "G_ema": persistent(G, reconstruct, easydict, G_KWARGS), "augment_pipe": None,
                "training_set_kwargs": {"path": "cifar10.zip", "resolution": 8}}
        path.write_bytes(pickle.dumps(data, protocol=3))  # Python 3.7's default, which upstream ran on
    return G, D


def test_official_pickle_loads_without_dnnlib_or_torch_utils(tmp_path):
    G, D = write_official_like_pkl(tmp_path / "network.pkl")
    assert "dnnlib" not in sys.modules and "torch_utils" not in sys.modules
    G2, D2, G_ema = official.load_official_pkl(tmp_path / "network.pkl")
    assert "dnnlib" not in sys.modules and "torch_utils" not in sys.modules
    z = torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(G_ema(z, None, noise_mode="const"), G(z, None, noise_mode="const"), atol=0, rtol=0)
        img = torch.randn(2, 3, 8, 8)
        torch.testing.assert_close(D2(img, None), D(img, None), atol=0, rtol=0)
    assert isinstance(G2, Generator)


class Evil:
    def __reduce__(self):
        return os.system, ("touch PWNED_BY_PICKLE",)


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"G_ema": Evil()}))
    with pytest.raises(official.UnsafePickleError, match=r"refusing to load (posix|os|nt)\.system"):
        official.load_official_pkl(tmp_path / "evil.pkl")
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    (tmp_path / "eval.pkl").write_bytes(pickle.dumps({"G": eval}))  # any global outside the allow-list
    with pytest.raises(official.UnsafePickleError, match="builtins.eval"):
        official.load_official_pkl(tmp_path / "eval.pkl")


def test_truncated_or_foreign_pickles_get_clear_errors(tmp_path):
    write_official_like_pkl(tmp_path / "network.pkl")
    (tmp_path / "cut.pkl").write_bytes((tmp_path / "network.pkl").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        official.load_official_pkl(tmp_path / "cut.pkl")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match=r"no stylegan2-ada-pytorch networks \(found keys \['a'\]\)"):
        official.load_official_pkl(tmp_path / "plain.pkl")
    (tmp_path / "number.pkl").write_bytes(pickle.dumps(7))
    with pytest.raises(CheckpointError, match=r"no stylegan2-ada-pytorch networks \(found int\); pass a network"):
        official.load_official_pkl(tmp_path / "number.pkl")
