"""Two image folders compared, as pytorch-fid's / clean-fid's `DIR_A DIR_B`: one extractor pass over each (folders
read by bench.images, PNG unless JPEG is allowed), then FID/KID (or their digits/identity counterparts) and, with
DIR_A as the reference and DIR_B as the samples, precision/recall/density/coverage.
"""

from __future__ import annotations

from pathlib import Path

import torch_fidelity

from bench.images import read_folder
from bench.metrics import extractors as fe
from bench.metrics.evaluate import FeaturePass, Knobs, check_counts, embed, feature_metrics, knobs_used, unavailable
from ddgan_ref.provenance import file_sha256


def compare(dir_a: Path, dir_b: Path, extractor: str = "inception-v3-compat", *, weights: Path | None = None,
            allow_lossy: bool = False, knobs: Knobs | None = None, fp: FeaturePass | None = None) -> dict:
    """Metrics between two image folders: {'metrics', 'unavailable', 'protocol'}; DIR_A is the reference side of
    precision/recall/density/coverage, DIR_B the samples (IS, where available, is DIR_B's)."""
    knobs, fp = knobs or Knobs(), fp or FeaturePass()
    module = fe.build(extractor, weights)  # a missing or unusable weights file fails before any image is read
    images = {side: read_folder(d, allow_lossy, rgb=True) for side, d in (("a", dir_a), ("b", dir_b))}
    check_counts(len(images["b"]), len(images["a"]), knobs, str(dir_a))
    feats = {side: embed(x, module, extractor, f"features of {d}", fp)
             for (side, x), d in zip(images.items(), (dir_a, dir_b), strict=True)}
    metrics = feature_metrics(feats["b"], feats["a"], fe.EXTRACTORS[extractor].tag, knobs, fp.device)
    source = getattr(module, "weights_file", None)
    weights_path = fe.weights_file(extractor, weights)
    protocol = {"dir_a": str(dir_a), "dir_b": str(dir_b), "n_a": len(images["a"]), "n_b": len(images["b"]),
                "shape_a": list(images["a"].shape[1:]), "shape_b": list(images["b"].shape[1:]),
                "extractor": extractor, "weights": str(weights_path) if weights_path else None,
                "weights_sha256": weights_path and file_sha256(weights_path),
                "weights_layout": source and source.layout, "weights_note": source and source.note,
                "lossy_allowed": allow_lossy, "knobs": knobs_used(knobs, len(images["b"]), len(images["a"])),
                "torch_fidelity": torch_fidelity.__version__}
    return {"metrics": metrics, "unavailable": unavailable(module), "protocol": protocol}
