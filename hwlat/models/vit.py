"""Vision transformers in the DeiT form (Touvron et al. 2021; Dosovitskiy et al. 2021).

A 16x16 patch-embedding convolution, a class token and learned position embeddings, pre-norm blocks
of multi-head self-attention (explicit ``q @ k^T``, softmax, ``@ v`` matmuls) and a GELU MLP.
"""

from __future__ import annotations

import torch
from torch import nn

from hwlat.models._layers import MatMul, check_resolution, tag

__all__ = ["deit", "DEIT"]

# variant -> (embedding dim, depth, heads): DeiT, Table 1 (ViT-B/16 is "base").
DEIT = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12)}


class Attention(nn.Module):
    """Multi-head self-attention: one qkv projection, per-head scaled dot products, softmax, output projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.scores = MatMul()
        self.softmax = nn.Softmax(dim=-1)
        self.mix = MatMul()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, N, 3D) -> (3, B, heads, N, D/heads)
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, self.head_dim)).permute(2, 0, 3, 1, 4).unbind(0)
        attn = self.softmax(self.scores(q * self.scale, k.transpose(-2, -1)))
        return self.proj(self.mix(attn, v).transpose(1, 2).flatten(2))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, resolution: int, patch: int, classes: int) -> None:
        super().__init__()
        tokens = (resolution // patch) ** 2 + 1
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, patches, D)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def deit(
    variant: str = "tiny",
    resolution: int = 224,
    classes: int = 1000,
    *,
    depth: int | None = None,
    patch: int = 16,
) -> nn.Module:
    """DeiT-``variant`` (tiny: 5,717,416 parameters at 224) built for ``resolution`` (a multiple of ``patch``).

    The position embedding has one entry per patch, so the model takes only the resolution it was built for.
    """
    if variant not in DEIT:
        raise ValueError(f"Unknown DeiT variant {variant!r}: choose one of {', '.join(DEIT)}")
    dim, d0, heads = DEIT[variant]
    resolution = check_resolution(resolution, multiple=patch)
    model = VisionTransformer(dim, d0 if depth is None else depth, heads, resolution, patch, classes)
    return tag(model, resolution)
