"""Feature extractors, all torch-fidelity FeatureExtractorBase modules (uint8 [B, 3, H, W] in, one tensor per
requested feature out): torch-fidelity's inception-v3-compat (local weights only), digits-cnn / mnist-cnn (our
classifier, per channel) and identity (the pixels). The offline ones are registered with torch-fidelity, so
`torch_fidelity.calculate_metrics(feature_extractor="digits-cnn", ...)` runs the same networks."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch
import torch_fidelity
from torch import Tensor
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

from bench.metrics import digits_cnn

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's name under torch.hub's cache
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"  # the same weights as released by pytorch-fid


class InceptionWeightsError(FileNotFoundError):
    """Inception-v3 weights are missing or unusable; the message says where to get them and where to put them."""


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


def inception_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def inception_fix() -> str:
    return (f"Fix: download {URL_INCEPTION_V3} (or pytorch-fid's {PYTORCH_FID_FILE}, the same weights) and pass "
            f"--inception-weights PATH, or put it at {inception_cache_path()}, or pass --download-inception on a "
            f"machine with internet access.")


def missing_inception_message() -> str:
    return ("Inception-v3 weights not found: FID, IS and KID use torch-fidelity's inception-v3-compat, whose weights "
            "(about 91 MB) this suite does not download behind your back. " + inception_fix())


def inception_weights(path: str | Path | None, download: bool = False) -> Path:
    """The weights file: `path` if given, else torch.hub's cached copy; download=True fetches it there."""
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
    if not cached.is_file():
        raise InceptionWeightsError(missing_inception_message())
    return cached


def _safe_state_dict_bytes(path: Path) -> io.BytesIO:
    """The file's state dict, loaded with weights_only=True and re-serialised: torch-fidelity itself loads
    with the unrestricted unpickler, so it only ever sees these checked bytes."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InceptionWeightsError(f"{path}: truncated, corrupt or not a plain state dict of tensors ({e}). "
                                    + inception_fix()) from e
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def build_inception(path: Path, features: tuple[str, ...]) -> FeatureExtractorInceptionV3:
    try:
        return FeatureExtractorInceptionV3("inception-v3-compat", list(features),
                                           feature_extractor_weights_path=_safe_state_dict_bytes(path))
    except RuntimeError as e:
        raise InceptionWeightsError(f"{path} does not fit torch-fidelity's Inception-v3 ({e}). "
                                    + inception_fix()) from e


class DigitsCNNExtractor(torch_fidelity.FeatureExtractorBase):
    """Each of the 3 channels is embedded (and classified) on its own: features [B, 3 * 128], logits [B, 3, 10].
    A greyscale image arrives as 3 equal channels (torch-fidelity's contract), so its features repeat 3 times."""

    default_weights: Path | None = digits_cnn.DEFAULT_WEIGHTS["digits-cnn"]

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        path = feature_extractor_weights_path or self.default_weights
        if path is None:
            raise digits_cnn.ClassifierWeightsError(
                f"{name} has no default weights: train them with `python -m bench.metrics.train_classifier "
                f"--dataset mnist --root DATA --image-size 32 --out mnist-cnn.pt` and pass --extractor-weights")
        self.net, self.meta = digits_cnn.load(path)

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
    """The same classifier trained on MNIST; no committed weights (MNIST is a download)."""

    default_weights = None


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
    """The extractor `name` in eval mode, giving its feature layer and (if any) its logits layer, on CPU."""
    if name not in EXTRACTORS:
        raise KeyError(f"unknown feature extractor {name!r}; choose from {sorted(EXTRACTORS)}")
    spec = EXTRACTORS[name]
    layers = (spec.feature,) if spec.logits is None else (spec.feature, spec.logits)
    if name == "inception-v3-compat":
        module = build_inception(inception_weights(weights, download), layers)
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
