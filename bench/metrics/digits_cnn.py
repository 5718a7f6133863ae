"""A small digit classifier (3 conv blocks + MLP) whose penultimate layer embeds digits for FD/KID/P/R/D/C and
whose argmax labels the modes of (stacked) digits; trained by `python -m bench.metrics.train_classifier`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddgan_ref.provenance import file_sha256

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = {"digits-cnn": WEIGHTS_DIR / "digits-cnn.pt", "mnist-cnn": WEIGHTS_DIR / "mnist-cnn.pt"}  # committed
FORMAT = "ddgan-bench/digits-cnn/1"


class ClassifierWeightsError(ValueError):
    """A classifier weights file is missing, unreadable, or does not fit the architecture it declares."""


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int = 16  # inputs are resized to this square side first (bilinear, antialiased)
    widths: tuple[int, int, int] = (16, 32, 64)
    feature_dim: int = 128
    num_classes: int = 10


class DigitsCNN(nn.Module):
    """x [B, 1, H, W] in [-1, 1] -> (features [B, feature_dim], logits [B, num_classes])."""

    def __init__(self, image_size: int, widths: tuple[int, int, int], feature_dim: int, num_classes: int):
        super().__init__()
        self.image_size = image_size
        chans = (1, *widths)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:], strict=True))
        side = image_size // 2 ** len(widths)
        self.embed = nn.Linear(widths[-1] * side * side, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=True)
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        features = F.relu(self.embed(x.flatten(1)))
        return features, self.head(features)


def build(config: ClassifierConfig) -> DigitsCNN:
    return DigitsCNN(**asdict(config))


def load(path: str | Path) -> tuple[DigitsCNN, dict]:
    """The classifier in eval mode and its file's meta (command, accuracy, dataset, ...); weights_only load."""
    path = Path(path)
    if not path.is_file():
        raise ClassifierWeightsError(f"classifier weights {path} do not exist. Fix: train them with `python -m "
                                     f"bench.metrics.train_classifier --out {path}` or pass the right path.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ClassifierWeightsError(f"{path}: truncated, corrupt or not a weights-only checkpoint ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ClassifierWeightsError(f"{path}: not a digit classifier file (format {FORMAT!r} expected)")
    config = ClassifierConfig(**{**payload["config"], "widths": tuple(payload["config"]["widths"])})
    net = build(config)
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise ClassifierWeightsError(f"{path}: weights do not fit {config}: {e}") from e
    return net.eval().requires_grad_(False), dict(payload["meta"], sha256=file_sha256(path))
