"""Frechet distance, kernel (KID) distance and Inception Score of features, through torch-fidelity 0.4's own
statistics-to-metric functions (Heusel et al. 2017; Binkowski et al. 2018; Salimans et al. 2016).

Statistics are kept in float64 (mu and Sigma): torch-fidelity's fid_statistics_to_metric asserts equal mu
dtypes, and a float32 Sigma moves FID at small N (spec/metrics.md 3.2).
"""

from __future__ import annotations

import numpy as np
from torch import Tensor
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric


def statistics(features: Tensor) -> dict[str, np.ndarray]:
    """{'mu': [D], 'sigma': [D, D]} in float64 of features [N, D] (N >= 2), as torch-fidelity but float64 mu."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"statistics need features [N >= 2, D], got shape {tuple(features.shape)}")
    x = features.double().numpy()
    return {"mu": x.mean(axis=0), "sigma": np.cov(x, rowvar=False)}


def frechet_distance(stats_1: dict[str, np.ndarray], stats_2: dict[str, np.ndarray]) -> float:
    """|mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)), by torch-fidelity (eigenvalues of S_1 S_2)."""
    as64 = [{k: np.asarray(v, dtype=np.float64) for k, v in s.items()} for s in (stats_1, stats_2)]
    return fid_statistics_to_metric(as64[0], as64[1], verbose=False)[KEY_METRIC_FID]


def kernel_distance(gen: Tensor, ref: Tensor, *, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 2020) -> tuple[float, float]:
    """KID (mean, std over `subsets` random subsets of min(subset_size, N_gen, N_ref)), cubic polynomial kernel."""
    size = min(subset_size, len(gen), len(ref))
    out = kid_features_to_metric(gen, ref, kid_subsets=subsets, kid_subset_size=size,
                                 kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                 kid_kernel_poly_coef0=1, rng_seed=seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def inception_score(logits: Tensor, *, splits: int = 10, seed: int = 2020) -> tuple[float, float]:
    """IS (mean, std over splits) of Inception's unbiased logits [N, 1008], as torch-fidelity."""
    out = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=seed)
    return out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD]
