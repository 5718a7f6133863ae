"""StyleGAN2 for vector data (the 2D mixtures): a mapping network and modulated, demodulated dense layers in
place of the convolutions; an MLP discriminator with minibatch standard deviation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from baselines.stylegan2.layers import FullyConnectedLayer
from baselines.stylegan2.networks import MappingNetwork
from ddgan_ref.ops import ACTIVATIONS, bias_act


class ModulatedLinear(nn.Module):
    """y = act((W * s) x * d + b): styles s = affine(w) per input feature, d = demodulation per output row."""

    def __init__(self, in_features: int, out_features: int, w_dim: int, *, demodulate: bool = True,
                 activation: str = "lrelu"):
        super().__init__()
        self.demodulate, self.activation = demodulate, activation
        self.affine = FullyConnectedLayer(w_dim, in_features, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_features, in_features]))
        self.bias = nn.Parameter(torch.zeros([out_features]))
        self.gain = 1.0 if demodulate else in_features**-0.5

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """Non-fused form (no per-sample weights): y = ((x * s) W^T) * rsqrt((s^2) (W^2)^T + 1e-8)."""
        s = self.affine(w) * self.gain  # [N, I]
        y = (x * s) @ self.weight.t()
        if self.demodulate:
            y = y * (s.square() @ self.weight.square().t() + 1e-8).rsqrt()
        return bias_act(y, self.bias, act=self.activation, gain=ACTIVATIONS[self.activation].gain)


class ToyGenerator(nn.Module):
    def __init__(self, z_dim: int = 16, w_dim: int = 64, data_dim: int = 2, hidden: int = 128, layers: int = 3):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, 0, w_dim
        self.const = nn.Parameter(torch.randn([hidden]))
        self.layers = nn.ModuleList(ModulatedLinear(hidden, hidden, w_dim) for _ in range(layers))
        self.out = ModulatedLinear(hidden, data_dim, w_dim, demodulate=False, activation="linear")
        self.num_ws = layers + 1
        self.mapping = MappingNetwork(z_dim, 0, w_dim, self.num_ws, num_layers=2)

    def forward(self, z: Tensor, c: Tensor | None = None, truncation_psi: float = 1.0, **unused) -> Tensor:
        return self.synthesis(self.mapping(z, c, truncation_psi))

    def synthesis(self, ws: Tensor, **unused) -> Tensor:
        """ws [N, num_ws, w_dim] -> points [N, data_dim] (no noise inputs: keyword arguments are ignored)."""
        x = self.const[None].repeat(ws.shape[0], 1)
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i])
        return self.out(x, ws[:, -1])


class ToyDiscriminator(nn.Module):
    def __init__(self, data_dim: int = 2, hidden: int = 128, layers: int = 3, mbstd_group_size: int = 4):
        super().__init__()
        self.c_dim, self.group = 0, mbstd_group_size
        dims = [data_dim] + [hidden] * layers
        self.body = nn.ModuleList(
            FullyConnectedLayer(a, b, activation="lrelu") for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.out = FullyConnectedLayer(hidden + 1, 1)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        for layer in self.body:
            x = layer(x)
        g = min(self.group, x.shape[0])
        y = x.reshape(g, -1, x.shape[1])
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=1)  # [N / g]
        return self.out(torch.cat([x, y.repeat(g)[:, None]], dim=1))
