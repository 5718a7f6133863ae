"""evaluate(images, dataset, extractor): quality and coverage of generated samples against a dataset split.

One pass of the extractor over the samples and one (cached) over the reference; then every metric of METRICS
on those features, plus mode coverage where the dataset has modes. Metric names carry the extractor: only
Inception gives `fid`, `kid`, `is`, `precision`, ...; digits-cnn gives `fd_digits`, `kd_digits`,
`precision_digits`, ...; so a number can never be mistaken for a paper's Inception number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
import torch_fidelity
from torch import Tensor

from bench.data import DatasetTooSmallError, build_dataset, stack_items
from bench.metrics import cache, modes
from bench.metrics import extractors as fe
from bench.metrics.features import extract
from bench.metrics.fid import frechet_distance, inception_score, kernel_distance, statistics
from bench.metrics.neighbours import prdc
from ddgan_ref.provenance import file_sha256

DEFAULT_EXTRACTOR = {
    "gaussians25": "identity", "ring8": "identity", "digits": "digits-cnn", "stacked-digits": "digits-cnn",
    "mnist": "mnist-cnn", "stacked-mnist": "mnist-cnn", "cifar10": "inception-v3-compat",
    "image-folder": "inception-v3-compat",
}
MODE_CLASSIFIER = {"digits": "digits-cnn", "stacked-digits": "digits-cnn", "mnist": "mnist-cnn",
                   "stacked-mnist": "mnist-cnn"}
STACKED = ("stacked-digits", "stacked-mnist")


@dataclass(frozen=True)
class Knobs:
    """Everything besides the data that sets the numbers."""

    nearest_k: int = 5
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    isc_splits: int = 10
    seed: int = 2020  # KID subsets and IS shuffling (torch-fidelity's default)


def _stats(features: dict) -> dict:
    """mu and Sigma as computed with the features (statistics() raises the clear error when N < 2)."""
    if "mu" not in features:
        return statistics(features["features"])
    return {"mu": features["mu"].numpy(), "sigma": features["sigma"].numpy()}


def fd_metric(gen: dict, ref: dict, knobs: Knobs, device) -> dict[str, float]:
    return {"fd": frechet_distance(_stats(gen), _stats(ref))}


def kd_metric(gen: dict, ref: dict, knobs: Knobs, device) -> dict[str, float]:
    mean, std = kernel_distance(gen["features"], ref["features"], subsets=knobs.kid_subsets,
                                subset_size=knobs.kid_subset_size, seed=knobs.seed)
    return {"kd": mean, "kd_std": std}


def prdc_metric(gen: dict, ref: dict, knobs: Knobs, device) -> dict[str, float]:
    return prdc(ref["features"], gen["features"], knobs.nearest_k, device=device)  # same values on any device


def is_metric(gen: dict, ref: dict, knobs: Knobs, device) -> dict[str, float]:
    mean, std = inception_score(gen["logits"], splits=knobs.isc_splits, seed=knobs.seed)
    return {"is": mean, "is_std": std}


# (sample features, reference features, knobs, device) -> {metric: value}, named later for the extractor.
METRICS: dict[str, Callable[[dict, dict, Knobs, torch.device | str], dict[str, float]]] = {
    "fd": fd_metric, "kd": kd_metric, "prdc": prdc_metric, "is": is_metric,
}
INCEPTION_ONLY = ("is",)


def metric_name(metric: str, tag: str) -> str:
    """'fd' -> 'fid' for Inception (tag ''), 'fd_digits' for digits-cnn; '_std' stays last."""
    base, std = (metric[:-4], "_std") if metric.endswith("_std") else (metric, "")
    if not tag:
        return {"fd": "fid", "kd": "kid"}.get(base, base) + std
    return f"{base}_{tag}{std}"


def table_metric(dataset: str) -> str:
    """The trilemma table's quality metric on a dataset (bench.report.QUALITY's first that its extractor gives):
    the share within 3 std on a mixture, else the Frechet distance in its default extractor's features."""
    if dataset in ("gaussians25", "ring8"):
        return "hq_fraction"
    return metric_name("fd", fe.EXTRACTORS[DEFAULT_EXTRACTOR[dataset]].tag)


def reference_set(dataset: str, split: str, n: int, seed: int, root, image_size: int | None):
    """The reference split with n items, or all of it where it holds fewer (digits, CIFAR-10, folders)."""
    kwargs = dict(root=root, train=split == "train", seed=seed, image_size=image_size)
    try:
        return build_dataset(dataset, size=n, **kwargs)
    except DatasetTooSmallError:
        return build_dataset(dataset, **kwargs)


def min_items(knobs: Knobs) -> int:
    """Items each side needs: 2 for FID's covariance, nearest_k + 1 for precision/recall's k-th neighbour."""
    return max(2, knobs.nearest_k + 1)


def check_counts(n_samples: int, n_ref: int, knobs: Knobs, dataset: str) -> None:
    """ValueError, before any feature pass, when either side is too small for the metrics (min_items)."""
    if min(n_samples, n_ref) < min_items(knobs):
        raise ValueError(f"{n_samples} samples against {n_ref} reference items ({dataset}): {_needs(knobs)} on each "
                         f"side; use more samples or more reference items")


def check_sample_count(n: int | None, option: str, knobs: Knobs) -> None:
    """A command's check before any work: a count it was given (--n, --n-ref, ...) that the metrics could not use
    (ValueError)."""
    if n is not None and n < min_items(knobs):
        raise ValueError(f"{option} {n}: {_needs(knobs)} on each side")


def check_reference_size(dataset: str, root, train: bool, knobs: Knobs) -> None:
    """A command's check before any work: the dataset opens and holds min_items(knobs) items (ValueError saying
    how many it holds otherwise)."""
    try:
        build_dataset(dataset, root=root, train=train, size=min_items(knobs))
    except DatasetTooSmallError as error:
        where = f" at {root}" if root else ""
        raise ValueError(f"{dataset}{where} holds {error.available} items: {_needs(knobs)} reference items; add "
                         f"items or point --root at a larger folder") from None


def _needs(knobs: Knobs) -> str:
    return (f"the metrics need at least {min_items(knobs)} (2 for FID's covariance, nearest_k + 1 = "
            f"{knobs.nearest_k + 1} for precision/recall)")


def files_digest(files: list[Path]) -> str:
    """A digest of the files' names, sizes and modification times: it changes when a folder is written again."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def reference_tensor(ds) -> Tensor:
    """All x of a dataset as one tensor, uint8 images as they are stored (the extractor quantises nothing)."""
    if hasattr(ds, "data") and getattr(ds, "image_size", None) is None and ds.data.dtype == torch.uint8:
        return ds.data
    return stack_items(ds)


@dataclass(frozen=True)
class Reference:
    """Which reference a set of samples is measured against."""

    dataset: str
    split: str = "train"
    n: int | None = None  # default: as many as the samples (capped by the split's size)
    seed: int = 0  # draws of synthetic and stacked datasets
    root: str | None = None  # data folder of file-backed datasets


Progress = Callable[[str, int], Callable[[int], None]]  # (stage, total) -> update(k), given by a CLI


class Sharding(Protocol):
    """Several processes (bench.distributed.World): each embeds shard(n) of the data, gather() joins the parts
    in order on every process."""

    main: bool

    def shard(self, n: int, align: int = 1) -> slice: ...

    def gather(self, part: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class FeaturePass:
    """How features are computed: batch size, device, the reference cache, progress bars, processes."""

    batch_size: int = 100
    device: torch.device | str = "cpu"
    cache_root: Path | None = None  # None: cache.default_root()
    use_cache: bool = True
    progress: Progress | None = None
    world: Sharding | None = None


def embed(data: Tensor, module, name: str, stage: str, fp: FeaturePass) -> dict[str, Tensor]:
    """Features (+ logits, mu, sigma) of data under the extractor `name`, as FeaturePass says."""
    part = data if fp.world is None else data[fp.world.shard(len(data), fp.batch_size)]
    update = fp.progress(stage, len(part)) if fp.progress is not None else None
    out = extract(part, module, name, batch_size=fp.batch_size, device=fp.device, progress=update)
    if fp.world is not None:
        out = {k: fp.world.gather(v) for k, v in out.items()}
    if len(out["features"]) >= 2:
        stats = statistics(out["features"])
        out.update(mu=torch.from_numpy(stats["mu"]), sigma=torch.from_numpy(stats["sigma"]))
    return out


def reference_features(ref: Reference, ds, module, name: str, weights_sha256: str | None,
                       fp: FeaturePass) -> dict[str, Tensor]:
    """Features (+ logits, mu, sigma) of the reference set, from the cache when its key matches."""
    key = {"dataset": ref.dataset, "split": ref.split, "n": len(ds), "seed": ref.seed, "shape": list(ds.shape),
           "root": str(Path(ref.root).resolve()) if ref.root else None, "extractor": name,
           "weights_sha256": weights_sha256, "torch_fidelity": torch_fidelity.__version__}
    if getattr(ds, "files", None) is not None:  # a folder written again under its name must not reuse features
        key["files"] = files_digest(ds.files)
    root = Path(fp.cache_root) if fp.cache_root is not None else cache.default_root()
    cached = cache.load(root, key) if fp.use_cache else None
    if cached is not None:
        return cached
    out = embed(reference_tensor(ds), module, name, f"features of {ref.dataset}", fp)
    if fp.use_cache and (fp.world is None or fp.world.main):
        cache.store(root, key, out)
    return out


def mode_labels(dataset: str, logits: Tensor) -> Tensor:
    """[N] modes from a digit classifier's per-channel logits [N, 3, 10]."""
    digits = logits.argmax(-1)
    return modes.stacked_modes(digits) if dataset in STACKED else digits[:, 0]


def mode_metrics(dataset: str, ds, gen_data: Tensor, ref_data: Tensor, gen_logits: Tensor | None,
                 ref_logits: Tensor | None) -> dict[str, float]:
    """Mode coverage of the samples, and of the reference itself (the ceiling the classifier allows)."""
    if hasattr(ds, "centers"):
        gen, ref = (modes.mixture_coverage(x, ds.centers, ds.std) for x in (gen_data, ref_data))
        return {**gen, "ref_modes": ref["modes"], "ref_hq_fraction": ref["hq_fraction"]}
    if dataset not in MODE_CLASSIFIER:
        return {}
    gen_modes, ref_modes = mode_labels(dataset, gen_logits), mode_labels(dataset, ref_logits)
    gen, ref = modes.coverage(gen_modes, ds.num_modes), modes.coverage(ref_modes, ds.num_modes)
    if dataset in STACKED:
        gen |= modes.channel_readings(gen_logits)
        ref |= modes.channel_readings(ref_logits)
    accuracy = (ref_modes == ds.labels[:len(ref_modes)]).double().mean().item()
    return {**gen, **{f"ref_{k}": v for k, v in ref.items()}, "classifier_accuracy_ref": accuracy}


def _check_samples(images: Tensor, ds, dataset: str) -> Tensor:
    """The samples, checked against the dataset's items; greyscale saved as RGB (3 equal channels, as
    save_image writes one-channel PNGs) is read back as one channel."""
    if images.is_floating_point() and not torch.isfinite(images).all():
        raise ValueError("samples contain NaN or inf (did the model diverge?); nothing to evaluate")
    if images.is_floating_point() and images.ndim == 4 and images.abs().max() > 10:
        raise ValueError(f"float samples range over [{images.min():.4g}, {images.max():.4g}], read as [-1, 1]: "
                         f"images in 0..255 go as uint8, or as floats rescaled by x / 127.5 - 1")
    if images.ndim == 4 and images.shape[1] == 3 and ds.shape[0] == 1 and (images == images[:, :1]).all():
        images = images[:, :1]
    if images.ndim == 2 and len(ds.shape) == 1 and images.shape[1] == ds.shape[0]:
        return images
    if images.ndim == 4 and len(ds.shape) == 3 and images.shape[1] == ds.shape[0]:
        return images
    raise ValueError(f"samples of shape {tuple(images.shape)} do not fit {dataset}, whose items are {ds.shape}")


def _classifier_pass(ref: Reference, ds, images: Tensor, weights, fp: FeaturePass) -> tuple[Tensor, Tensor, dict]:
    """Logits of samples and reference from the dataset's mode classifier (when it is not the extractor)."""
    name = MODE_CLASSIFIER[ref.dataset]
    module = fe.build(name, weights)
    sha = file_sha256(fe.weights_file(name, weights))
    gen = embed(images, module, name, "classifying samples", fp)
    refd = reference_features(ref, ds, module, name, sha, fp)
    return gen["logits"], refd["logits"], module.meta


def evaluate(images: Tensor, dataset: str | Reference, extractor: str | None = None, *,
             weights: str | Path | None = None, classifier_weights: str | Path | None = None,
             download_inception: bool = False, knobs: Knobs = Knobs(), batch_size: int = 100,
             device: torch.device | str = "cpu", cache_root: str | Path | None = None, use_cache: bool = True,
             progress: Progress | None = None, world: Sharding | None = None, count_modes: bool = True) -> dict:
    """Metrics of samples (images [N, C, H, W] float in [-1, 1] or uint8, or points [N, 2]) against a dataset
    split: {'metrics': {name: number}, 'unavailable': {name: why}, 'protocol': {what was measured, how}}; mode
    coverage too where the dataset has modes, unless count_modes=False (a second pass with another extractor).
    `weights` is the extractor's weights file (for Inception, the --inception-weights file), `classifier_weights`
    the mode classifier's when it is not the extractor. Reference features are cached under `cache_root` (default
    cache.default_root()). With `world` (several processes), each embeds its shard and every process gets the same
    numbers."""
    # The extractor first: a missing weights file fails before any work.
    ref = _reference(dataset)
    name = extractor or DEFAULT_EXTRACTOR[ref.dataset]
    module = fe.build(name, weights, download_inception)
    weights_path = fe.weights_file(name, weights)
    sha = weights_path and file_sha256(weights_path)
    # The reference split, and the samples checked against it.
    ds = reference_set(ref.dataset, ref.split, ref.n or len(images), ref.seed, ref.root,
                       None if images.ndim == 2 else images.shape[-1])
    images = _check_samples(images, ds, ref.dataset)
    check_counts(len(images), len(ds), knobs, ref.dataset)
    # One feature pass over each side, then every metric on those features.
    fp = FeaturePass(batch_size, device, None if cache_root is None else Path(cache_root), use_cache, progress, world)
    gen = embed(images, module, name, "features of samples", fp)
    refd = reference_features(ref, ds, module, name, sha, fp)
    metrics = feature_metrics(gen, refd, fe.EXTRACTORS[name].tag, knobs, device)
    source = getattr(module, "weights_file", None)  # an Inception file: its layout, logits and provenance
    classifier = (_count_modes(metrics, ref, ds, images, name, module, gen, refd, classifier_weights, fp)
                  if count_modes else None)
    protocol = {**asdict(ref), "n": len(ds), "n_samples": len(images), "extractor": name,
                "weights": str(weights_path) if weights_path else None, "weights_sha256": sha,
                "weights_layout": source and source.layout, "weights_note": source and source.note,
                "feature_dim": gen["features"].shape[1], "knobs": knobs_used(knobs, len(images), len(ds)),
                "sample_format": _format(images),
                "classifier": classifier if ref.dataset in MODE_CLASSIFIER else None,
                "torch_fidelity": torch_fidelity.__version__}
    return {"metrics": metrics, "unavailable": unavailable(module), "protocol": protocol}


def _reference(dataset: str | Reference) -> Reference:
    ref = dataset if isinstance(dataset, Reference) else Reference(dataset)
    if ref.dataset not in DEFAULT_EXTRACTOR:
        raise KeyError(f"unknown dataset {ref.dataset!r}; choose from {sorted(DEFAULT_EXTRACTOR)}")
    return ref


def _count_modes(metrics: dict, ref: Reference, ds, images: Tensor, name: str, module, gen: dict, refd: dict,
                 classifier_weights, fp: FeaturePass) -> Any:
    """Add the mode-coverage metrics to `metrics`, from the extractor's logits or a second pass of the dataset's
    classifier; returns the classifier that counted them."""
    gen_logits, ref_logits, classifier = gen.get("logits"), refd.get("logits"), getattr(module, "meta", None)
    if ref.dataset in MODE_CLASSIFIER and MODE_CLASSIFIER[ref.dataset] != name:
        gen_logits, ref_logits, classifier = _classifier_pass(ref, ds, images, classifier_weights, fp)
    ref_data = reference_tensor(ds) if images.ndim == 2 else None
    metrics.update(mode_metrics(ref.dataset, ds, images, ref_data, gen_logits, ref_logits))
    return classifier


def knobs_used(knobs: Knobs, n_gen: int, n_ref: int) -> dict[str, Any]:
    """The knobs as the metrics applied them: KID's subset size capped by both sides' N (as kernel_distance does),
    so a record never claims subsets larger than its samples."""
    return asdict(replace(knobs, kid_subset_size=min(knobs.kid_subset_size, n_gen, n_ref)))


def feature_metrics(gen: dict, ref: dict, tag: str, knobs: Knobs, device) -> dict[str, float]:
    """Every metric of METRICS on the features (IS only from Inception with logits), named for the extractor's tag."""
    return {metric_name(m, tag): v for key, fn in METRICS.items()
            if key not in INCEPTION_ONLY or (not tag and "logits" in gen)
            for m, v in fn(gen, ref, knobs, device).items()}


def unavailable(module) -> dict[str, str]:
    """Metrics the extractor cannot give, with the reason: IS from an Inception file without logits."""
    source = getattr(module, "weights_file", None)
    if source is None or source.has_logits:
        return {}
    return {"is": f"{source.path.name} has no logits layer ({source.note}); IS needs the 1008 logits"}


def _format(images: Tensor) -> str:
    return "points" if images.ndim == 2 else f"{images.dtype} tensor -> uint8 as save_image"
