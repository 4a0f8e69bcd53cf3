"""A small UNet for the learned score models (docs/learned-models.md): GroupNorm residual blocks conditioned
on a noise embedding, one resolution change per level, skip connections from the way down to the way up.

It computes EDM's raw network F(c_in x, c_noise); `experiments.models.edm.EDMDenoiser` wraps it with the
preconditioning. Sizes are data (`UNetConfig`), stored in every checkpoint card, so a checkpoint rebuilds its
own network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    image_channels: int = 1
    image_size: int = 8
    base_channels: int = 64
    channel_multipliers: tuple = (1, 2)  # one level per entry; each level after the first halves the size
    blocks_per_level: int = 2
    embedding_dim: int = 128
    groups: int = 8
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "channel_multipliers": list(self.channel_multipliers)}

    @classmethod
    def from_dict(cls, values: dict) -> UNetConfig:
        return cls(**{**values, "channel_multipliers": tuple(values["channel_multipliers"])})


class NoiseEmbedding(nn.Module):
    """Sinusoidal features of c_noise (EDM uses c_noise = log(sigma)/4) followed by a two-layer MLP."""

    def __init__(self, dim: int):
        super().__init__()
        self.frequencies = nn.Parameter(
            torch.exp(-math.log(1e4) * torch.arange(dim // 2) / (dim // 2)), requires_grad=False
        )
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise):
        angles = 100.0 * c_noise[:, None] * self.frequencies[None]
        return self.mlp(torch.cat([angles.cos(), angles.sin()], dim=1))


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, embedding_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm_in = nn.GroupNorm(groups, in_channels)
        self.conv_in = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.scale_shift = nn.Linear(embedding_dim, 2 * out_channels)
        self.norm_out = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv_out = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        # the block starts as the identity map (its last convolution is zero), which keeps a deep stack stable
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x, embedding):
        h = self.conv_in(nn.functional.silu(self.norm_in(x)))
        scale, shift = self.scale_shift(embedding)[:, :, None, None].chunk(2, dim=1)
        h = nn.functional.silu(self.norm_out(h) * (1 + scale) + shift)
        return self.skip(x) + self.conv_out(self.dropout(h))


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c = config
        widths = [c.base_channels * m for m in c.channel_multipliers]
        self.embedding = NoiseEmbedding(c.embedding_dim)
        self.stem = nn.Conv2d(c.image_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        skips = [widths[0]]
        current = widths[0]
        for level, width in enumerate(widths):
            if level > 0:
                self.down.append(nn.Conv2d(current, current, 3, stride=2, padding=1))
                skips.append(current)
            for _ in range(c.blocks_per_level):
                self.down.append(ResidualBlock(current, width, c.embedding_dim, c.groups, c.dropout))
                current = width
                skips.append(current)
        self.middle = nn.ModuleList(
            [ResidualBlock(current, current, c.embedding_dim, c.groups, c.dropout) for _ in range(2)]
        )
        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(c.blocks_per_level + 1):
                self.up.append(
                    ResidualBlock(current + skips.pop(), width, c.embedding_dim, c.groups, c.dropout)
                )
                current = width
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.head = nn.Sequential(
            nn.GroupNorm(c.groups, current), nn.SiLU(), nn.Conv2d(current, c.image_channels, 3, padding=1)
        )

    def forward(self, x, c_noise):
        embedding = self.embedding(c_noise)
        h = self.stem(x)
        stack = [h]
        for layer in self.down:
            h = layer(h, embedding) if isinstance(layer, ResidualBlock) else layer(h)
            stack.append(h)
        for layer in self.middle:
            h = layer(h, embedding)
        for layer in self.up:
            if isinstance(layer, ResidualBlock):
                h = layer(torch.cat([h, stack.pop()], dim=1), embedding)
            else:
                h = layer(h)
        return self.head(h)
