"""Metrics: one feature pass, FID/IS/KID via torch-fidelity, prdc-exact precision/recall/density/coverage in
blocks, and mode coverage. `prdc(real, fake, nearest_k=5)` mirrors prdc.compute_prdc; `evaluate(images,
dataset, extractor)` is what the harness calls."""

from bench.metrics.evaluate import METRICS, Knobs, Reference, evaluate
from bench.metrics.extractors import EXTRACTORS
from bench.metrics.inception import InceptionWeightsError
from bench.metrics.neighbours import prdc

__all__ = ["EXTRACTORS", "METRICS", "InceptionWeightsError", "Knobs", "Reference", "evaluate", "prdc"]
