"""The reverse loop and the DDGAN adapter: NFE = T, per-sample seeds, the Generator contract."""

import pytest
import torch

from ddgan_ref import model, sampling
from ddgan_ref.diffusion import posterior_coefficients
from ddgan_ref.rng import SeedStream


class Recorder(torch.nn.Module):
    """A stand-in generator that records its calls and predicts x0 = tanh(x)."""

    z_dim = 3

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, z):
        self.calls.append((t.clone(), z.shape))
        return torch.tanh(x)


@pytest.mark.parametrize("T", [1, 2, 4, 8])
def test_sample_calls_generator_exactly_T_times_with_descending_t(T):
    G = Recorder()
    x_T = torch.randn(5, 2)
    sampling.sample(G, x_T, posterior_coefficients(T), SeedStream(0, 5))
    assert [int(t[0]) for t, _ in G.calls] == list(reversed(range(T)))
    assert all(shape == (5, 3) for _, shape in G.calls)


def test_seed_stream_rows_do_not_depend_on_batch_split():
    whole = SeedStream(10, 6).randn(3, 4)
    parts = torch.cat([SeedStream(10, 2).randn(3, 4), SeedStream(12, 4).randn(3, 4)])
    torch.testing.assert_close(whole, parts, atol=0, rtol=0)


def test_seed_stream_rejects_empty():
    with pytest.raises(ValueError, match="n >= 1"):
        SeedStream(0, 0)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return model.build("tiny")


def test_ddgan_sample_shape_and_steps(tiny):
    """The contract itself (determinism, batch independence, NFE = T) is tests/bench/test_registry.py's, for
    every family."""
    assert tiny.sample(2, tiny.default_steps, seed=0).shape == (2, 3, 16, 16) and tiny.default_steps == 4


def test_ddgan_rejects_other_steps(tiny):
    with pytest.raises(ValueError, match="trained with T=4; got steps=2"):
        tiny.sample(2, 2)
