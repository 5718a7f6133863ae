"""upfirdn2d_ref against an independent numpy loop oracle, and its autograd to second order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddgan_ref.ops import upfirdn2d_ref


def upfirdn2d_oracle(x: np.ndarray, f: np.ndarray, up: int, down: int, pad, flip_filter: bool) -> np.ndarray:
    """Direct definition: y[o] = sum_k u[o * down + k] * g[k], u = zero-inserted x shifted by the pad.

    g is f rotated by 180 degrees (true convolution) unless flip_filter. Loops over outputs and taps.
    """
    x0, x1, y0, y1 = pad
    n, c, h, w = x.shape
    kh, kw = f.shape
    g = f if flip_filter else f[::-1, ::-1]
    out_h = (h * up + y0 + y1 - kh) // down + 1
    out_w = (w * up + x0 + x1 - kw) // down + 1
    y = np.zeros((n, c, out_h, out_w))
    for oy in range(out_h):
        for ox in range(out_w):
            for ky in range(kh):
                for kx in range(kw):
                    my, mx = oy * down + ky - y0, ox * down + kx - x0  # position in the upsampled grid
                    if my % up or mx % up:
                        continue
                    iy, ix = my // up, mx // up
                    if 0 <= iy < h and 0 <= ix < w:
                        y[:, :, oy, ox] += x[:, :, iy, ix] * g[ky, kx]
    return y


CASES = [
    # (H, W, kh, kw, up, down, pad)
    (5, 7, 4, 4, 1, 1, (0, 0, 0, 0)),
    (8, 8, 4, 4, 2, 1, (2, 1, 2, 1)),
    (8, 8, 4, 4, 1, 2, (1, 1, 1, 1)),
    (6, 9, 3, 2, 2, 2, (1, 2, 0, 3)),
    (7, 5, 4, 3, 3, 1, (-1, 2, 3, -2)),
    (9, 11, 2, 5, 1, 3, (-2, -1, 0, 1)),
    (6, 6, 5, 5, 2, 3, (2, 2, 2, 2)),
    (4, 10, 1, 3, 4, 2, (0, -3, 1, 0)),
]


@pytest.mark.parametrize("h,w,kh,kw,up,down,pad", CASES)
@pytest.mark.parametrize("flip_filter", [False, True])
def test_upfirdn2d_ref_matches_oracle(h, w, kh, kw, up, down, pad, flip_filter):
    rng = np.random.default_rng(h * 100 + w * 10 + up + 7 * down)
    x, f = rng.standard_normal((2, 3, h, w)), rng.standard_normal((kh, kw))  # non-symmetric filter
    y = upfirdn2d_ref(
        torch.from_numpy(x), torch.from_numpy(f), up=up, down=down, pad=pad, flip_filter=flip_filter
    )
    torch.testing.assert_close(y, torch.from_numpy(upfirdn2d_oracle(x, f, up, down, pad, flip_filter)),
                               atol=1e-12, rtol=0)


def test_upfirdn2d_ref_separable_filter_and_gain():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    k = torch.tensor([1.0, 2.0, 5.0, 1.0], dtype=torch.float64)
    y1 = upfirdn2d_ref(x, k, up=2, pad=(2, 1, 2, 1), gain=4.0)
    y2 = upfirdn2d_ref(x, torch.outer(k, k), up=2, pad=(2, 1, 2, 1)) * 4.0
    torch.testing.assert_close(y1, y2, atol=1e-12, rtol=0)


def test_upfirdn2d_ref_float32_and_shape():
    x = torch.randn(1, 4, 16, 16)
    f = torch.ones(4, 4) / 16
    assert upfirdn2d_ref(x, f, up=2, pad=(2, 1, 2, 1)).shape == (1, 4, 32, 32)
    assert upfirdn2d_ref(x, f, down=2, pad=(1, 1, 1, 1)).dtype == torch.float32


@pytest.mark.parametrize("up,down,pad", [(2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)), (2, 2, (1, -1, 0, 2))])
def test_upfirdn2d_ref_gradcheck_and_gradgradcheck(up, down, pad):
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    f = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, f: upfirdn2d_ref(x, f, up=up, down=down, pad=pad)
    assert torch.autograd.gradcheck(fn, (x, f), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, f), fast_mode=True)


@pytest.mark.parametrize("bad", [dict(up=0), dict(down=0), dict(pad=(1, 1)), dict(f=torch.ones(2, 2, 2))])
def test_upfirdn2d_ref_rejects_bad_arguments(bad):
    kwargs = dict(f=torch.ones(2, 2)) | bad
    f = kwargs.pop("f")
    with pytest.raises(ValueError):
        upfirdn2d_ref(torch.randn(1, 1, 4, 4), f, **kwargs)
