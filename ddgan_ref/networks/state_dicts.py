"""Loading official DDGAN state dicts (saved from DistributedDataParallel, keys prefixed `module.`)."""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn as nn
from torch import Tensor

DDP_PREFIX = "module."


def strip_module_prefix(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop a leading `module.` from every key that has one; other keys are kept as they are."""
    return {k.removeprefix(DDP_PREFIX): v for k, v in state_dict.items()}


def load_official_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> nn.Module:
    """Strip `module.` and load strictly (every key and shape must match); returns `model`."""
    model.load_state_dict(strip_module_prefix(state_dict), strict=True)
    return model
