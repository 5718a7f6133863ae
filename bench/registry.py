"""The models the harness can build, as a dict literal of builders (preset name, checkpoint, device)."""

from __future__ import annotations

from collections.abc import Callable

from baselines.ddpm import model as ddpm_model
from baselines.stylegan2 import model as sg2_model
from bench.protocol import Generator
from ddgan_ref import model as ddgan_model

MODELS: dict[str, Callable[..., Generator]] = {
    "ddgan": ddgan_model.build,
    "ddpm": ddpm_model.build,
    "stylegan2": sg2_model.build,
}


def build_model(name: str, **kwargs) -> Generator:
    """MODELS[name](**kwargs): preset_name=..., checkpoint=..., device=...; KeyError names the choices."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name](**kwargs)
