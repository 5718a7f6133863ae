"""Mode coverage: modes covered and KL(p_gen || uniform) of the mode histogram, as PacGAN's protocols.

Stacked MNIST / Stacked Digits (Lin et al. 2018, fjxmlzn/PacGAN stacked_MNIST_experiments): the mode of an image
is 100 d_R + 10 d_G + d_B, the digits a classifier reads in each channel; 1000 modes; 26k samples by default.
2D mixtures (PacGAN synthetic_data_experiments): a sample belongs to its nearest centre and is high-quality if it
lies within 3 std of it; modes covered counts centres with at least one high-quality sample.
Digits: the 10 classes of a classifier. KL uses natural logarithms, 0 log 0 = 0.
Stacked data also gets how the classifier reads each channel (channel_readings), which tells a model that drops
digits (a skewed histogram read with confidence) from one whose digits the classifier cannot read (low confidence).
"""

from __future__ import annotations

import torch
from torch import Tensor


def histogram(modes: Tensor, num_modes: int) -> Tensor:
    """[num_modes] counts of modes [N] (int, 0 <= mode < num_modes; negative entries are ignored)."""
    modes = modes[modes >= 0].long()
    return torch.bincount(modes, minlength=num_modes)[:num_modes]


def kl_to_uniform(counts: Tensor) -> float:
    """KL(p || U) = sum p log(p M) over modes with p > 0; p = counts / sum, M = len(counts)."""
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float((p * (p * len(counts)).log()).sum())


def coverage(modes: Tensor, num_modes: int) -> dict[str, float]:
    """{'modes': modes seen at least once, 'mode_kl': KL of their histogram to uniform (None: no sample)}."""
    counts = histogram(modes, num_modes)
    if counts.sum() == 0:
        return {"modes": 0, "mode_kl": None}
    return {"modes": int((counts > 0).sum()), "mode_kl": kl_to_uniform(counts)}


CONFIDENT = 0.9  # the top softmax probability at which a channel reading counts as confident


def channel_readings(logits: Tensor) -> dict[str, float]:
    """Per-channel readings of stacked samples from a classifier's logits [N, C, 10]: 'digit_kl', the mean over
    channels of KL(the channel's digit histogram || uniform over 10) (mode_kl is their sum plus the channels'
    dependence), and 'confident_share', the share of readings whose top probability is >= CONFIDENT."""
    digits = logits.argmax(-1)
    kls = [kl_to_uniform(histogram(digits[:, c], logits.shape[-1])) for c in range(logits.shape[1])]
    top = logits.double().softmax(-1).amax(-1)
    return {"digit_kl": sum(kls) / len(kls), "confident_share": float((top >= CONFIDENT).double().mean())}


def stacked_modes(digits: Tensor) -> Tensor:
    """[N] mode 100 d_R + 10 d_G + d_B of per-channel digits [N, 3]."""
    return digits.long() @ torch.tensor([100, 10, 1], device=digits.device)


def nearest_centre(points: Tensor, centres: Tensor, std: float) -> tuple[Tensor, Tensor]:
    """Nearest centre [N] of points [N, 2] among centres [M, 2], and whether it lies within 3 std [N] (bool)."""
    d = torch.cdist(points.double(), centres.double())
    dist, mode = d.min(dim=1)
    return mode, dist < 3 * std


def mixture_coverage(points: Tensor, centres: Tensor, std: float) -> dict[str, float]:
    """{'modes': centres with a high-quality sample, 'hq_fraction': high-quality / all samples,
    'mode_kl': KL of the high-quality samples' mode histogram to uniform}."""
    mode, good = nearest_centre(points, centres, std)
    out = coverage(torch.where(good, mode, -1), len(centres))
    return {"modes": out["modes"], "hq_fraction": float(good.double().mean()), "mode_kl": out["mode_kl"]}
