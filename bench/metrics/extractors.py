"""Feature extractors, all torch-fidelity FeatureExtractorBase modules (uint8 [B, 3, H, W] in, one tensor per
requested feature out): torch-fidelity's inception-v3-compat (local weights only, any file bench.metrics.inception
reads), digits-cnn / mnist-cnn (our classifier, per channel) and identity (the pixels). The offline ones are
registered with torch-fidelity, so `torch_fidelity.calculate_metrics(feature_extractor="digits-cnn", ...)` runs the
same networks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch_fidelity
from torch import Tensor

from bench.metrics import digits_cnn
from bench.metrics.inception import build_inception, inception_weights


@dataclass(frozen=True)
class Extractor:
    """name: torch-fidelity's name; tag: suffix of metric names ('' only for Inception: fid, kid, is);
    feature / logits: the layers used for distances and for IS or mode labels (None: not provided)."""

    name: str
    tag: str
    feature: str
    logits: str | None


EXTRACTORS: dict[str, Extractor] = {
    "inception-v3-compat": Extractor("inception-v3-compat", "", "2048", "logits_unbiased"),
    "digits-cnn": Extractor("digits-cnn", "digits", "features", "logits"),
    "mnist-cnn": Extractor("mnist-cnn", "mnist", "features", "logits"),
    "identity": Extractor("identity", "identity", "pixels", None),
}


class DigitsCNNExtractor(torch_fidelity.FeatureExtractorBase):
    """Each of the 3 channels is embedded (and classified) on its own: features [B, 3 * 128], logits [B, 3, 10].
    A greyscale image arrives as 3 equal channels (torch-fidelity's contract), so its features repeat 3 times."""

    default_weights: Path = digits_cnn.DEFAULT_WEIGHTS["digits-cnn"]

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.net, self.meta = digits_cnn.load(feature_extractor_weights_path or self.default_weights)

    @staticmethod
    def get_provided_features_list():
        return "features", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "features"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 16, 16, dtype=torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        b = x.shape[0]
        grey = (x.reshape(b * 3, 1, *x.shape[2:]).float() / 127.5 - 1).to(next(self.net.parameters()).device)
        features, logits = self.net(grey)
        out = {"features": features.reshape(b, -1), "logits": logits.reshape(b, 3, -1)}
        return tuple(out[f] for f in self.features_list)


class MNISTCNNExtractor(DigitsCNNExtractor):
    """The same classifier trained on the real MNIST train split (committed weights)."""

    default_weights = digits_cnn.DEFAULT_WEIGHTS["mnist-cnn"]


class IdentityExtractor(torch_fidelity.FeatureExtractorBase):
    """The pixels themselves, 0..255 as float32 [B, 3 * H * W] (integer-valued, so distances tie exactly)."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    @staticmethod
    def get_provided_features_list():
        return ("pixels",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "pixels"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return (x.flatten(1).float(),)


OFFLINE = {"digits-cnn": DigitsCNNExtractor, "mnist-cnn": MNISTCNNExtractor, "identity": IdentityExtractor}


def register() -> None:
    """Register the offline extractors with torch-fidelity (idempotent)."""
    for name, cls in OFFLINE.items():
        if name not in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY:
            torch_fidelity.register_feature_extractor(name, cls)


def build(name: str, weights: str | Path | None = None, download: bool = False) -> torch_fidelity.FeatureExtractorBase:
    """The extractor `name` in eval mode, giving its feature layer and (if any) its logits layer, on CPU; its
    `features_list` names what it gives (an Inception file without logits gives features only)."""
    if name not in EXTRACTORS:
        raise KeyError(f"unknown feature extractor {name!r}; choose from {sorted(EXTRACTORS)}")
    spec = EXTRACTORS[name]
    layers = (spec.feature,) if spec.logits is None else (spec.feature, spec.logits)
    if name == "inception-v3-compat":
        module = build_inception(inception_weights(weights, download), spec.feature, spec.logits)
    else:
        module = OFFLINE[name](name, list(layers), feature_extractor_weights_path=weights)
    return module.eval().requires_grad_(False)


def weights_file(name: str, weights: str | Path | None) -> Path | None:
    """The file whose hash identifies an extractor's weights (None for identity)."""
    if name == "identity":
        return None
    if name == "inception-v3-compat":
        return inception_weights(weights)
    return Path(weights) if weights is not None else OFFLINE[name].default_weights
