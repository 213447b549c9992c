"""Splitting indices: the minimum eigenpair of every neuron's splitting matrix S, exact or fast.

Exact forms S and eigen-decomposes it (small layers, checks); fast runs
Rayleigh-quotient gradient descent with RMSprop on v, where S·v of every neuron
comes from one backward pass through an auxiliary activation (paper Sec. 4),
optionally refined by Rayleigh–Ritz on a Krylov space.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from hwlat.search._splitnet import SplitNet, act_second_derivative
from hwlat.search.splitting.config import EigenConfig

__all__ = ["SplitIndex", "splitting_matrices", "splitting_products", "splitting_index"]


@dataclass(frozen=True)
class SplitIndex:
    """Splitting index of every neuron of one layer: min eigenvalues (C,) and unit eigenvectors (C, dim)."""

    eigenvalues: np.ndarray
    eigenvectors: torch.Tensor


def _batches(loader: DataLoader):
    n = len(loader.dataset)
    for x, y in loader:
        yield x, y, len(y) / n


def splitting_matrices(model: SplitNet, loader: DataLoader) -> list[torch.Tensor]:
    """Exact splitting matrices S of every neuron, averaged over ``loader``: one (C, dim, dim) tensor per layer.

    Uses eval-mode normalisation. Memory is C·dim² per layer, so this is for
    small layers and for checking the fast method.
    """
    neurons = model.neurons
    was = model.training
    model.eval()
    mats = [torch.zeros(m.width, m.dim, m.dim, dtype=torch.float64) for m in neurons]
    try:
        for m in neurons:
            m.record = True
        for x, y, share in _batches(loader):
            loss = F.cross_entropy(model(x), y)
            outs = [m.saved[2] for m in neurons]
            grads = torch.autograd.grad(loss, outs)
            for k, (m, g) in enumerate(zip(neurons, grads)):
                xin, z, _ = m.saved
                c = m.coef().detach().view(1, -1, *([1] * (z.dim() - 2)))
                w = (g * act_second_derivative(m.act, z) * c * c).reshape(g.shape[0], g.shape[1], -1)  # N, C, P
                X = m.patches(xin)  # N, dim, P
                Xf = X.permute(1, 0, 2).reshape(X.shape[1], -1).double()  # dim, N*P
                wf = w.permute(1, 0, 2).reshape(w.shape[1], -1).double()  # C, N*P
                for ch in range(m.width):
                    mats[k][ch] += share * (Xf * wf[ch]) @ Xf.T
    finally:
        for m in neurons:
            m.record, m.saved = False, None
        model.train(was)
    return [S.float() for S in mats]


def _set_aux(model: SplitNet, vectors: Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
    ys = []
    for m, v in zip(model.neurons, vectors or [None] * len(model.neurons)):
        if v is None:
            m.aux_y = m.aux_v = None
            continue
        m.aux_y = torch.zeros_like(m.weight, requires_grad=True)
        m.aux_v = v.reshape(m.weight.shape)
        ys.append(m.aux_y)
    return ys


def _aux_products(model: SplitNet, x: torch.Tensor, y: torch.Tensor, ys: list[torch.Tensor]) -> list[torch.Tensor]:
    """S·v of every neuron on one batch: the gradient of the loss w.r.t. the auxiliary y."""
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, ys)
    return [g.reshape(g.shape[0], -1) for g in grads]


def splitting_products(model: SplitNet, loader: DataLoader, vectors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """S·v for every neuron from backward passes through the auxiliary activation, averaged over ``loader``.

    ``vectors[k]`` has shape (C_k, dim_k): one v per neuron of layer k.
    """
    was = model.training
    model.eval()
    out = [torch.zeros(v.shape, dtype=torch.float64) for v in vectors]
    try:
        ys = _set_aux(model, vectors)
        for x, y, share in _batches(loader):
            for acc, sv in zip(out, _aux_products(model, x, y, ys)):
                acc += share * sv.double()
    finally:
        _set_aux(model, None)
        model.train(was)
    return [o.float() for o in out]


def _exact_index(model: SplitNet, loader: DataLoader) -> list[SplitIndex]:
    result = []
    for S in splitting_matrices(model, loader):
        vals, vecs = torch.linalg.eigh(S.double())
        result.append(SplitIndex(vals[:, 0].numpy().astype(float), vecs[:, :, 0].float()))
    return result


def _fast_index(model: SplitNet, loader: DataLoader, config: EigenConfig, quiet: bool = True) -> list[SplitIndex]:
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(config.seed)
    vs = []
    for m in model.neurons:
        v = (torch.rand(m.width, m.dim, generator=gen) * 2 - 1) * config.init_scale
        vs.append(v / v.norm(dim=1, keepdim=True))
    opt = torch.optim.RMSprop(vs, lr=config.lr, momentum=0.9, alpha=0.9)
    was = model.training
    model.eval()
    try:
        for _sweep in tqdm(
            range(config.sweeps), desc="splitting index", unit="sweep", disable=quiet, file=sys.stderr, leave=False
        ):
            for x, y, _ in _batches(loader):
                ys = _set_aux(model, vs)
                svs = _aux_products(model, x, y, ys)
                for v, sv in zip(vs, svs):
                    vv = (v * v).sum(1, keepdim=True)
                    vsv = (sv * v).sum(1, keepdim=True)
                    # Gradient of the Rayleigh quotient vᵀSv / vᵀv (paper Eq. 7).
                    v.grad = 2 * (sv * vv - v * vsv) / vv.pow(2)
                opt.step()
                with torch.no_grad():
                    for v in vs:
                        v /= v.norm(dim=1, keepdim=True)
            for group in opt.param_groups:
                group["lr"] *= config.lr_decay
    finally:
        _set_aux(model, None)
        model.train(was)
    vs = [v.detach() for v in vs]
    if config.refine > 1:
        return _krylov_refine(model, loader, vs, config.refine)
    # λ = v̂ᵀ S v̂ with the final v̂ on the whole split (one more pass), not a running average.
    svs = splitting_products(model, loader, vs)
    return [SplitIndex((sv * v).sum(1).numpy().astype(float), v.clone()) for v, sv in zip(vs, svs)]


def _krylov_refine(model: SplitNet, loader: DataLoader, vs: Sequence[torch.Tensor], m: int) -> list[SplitIndex]:
    """Smallest Ritz pair of each neuron's S on span{v, Sv, …, S^(m−1)v}, from m passes of S·v products."""
    bases = [[(v / v.norm(dim=1, keepdim=True)).double()] for v in vs]
    products: list[list[torch.Tensor]] = [[] for _ in vs]
    for i in range(m):
        svs = splitting_products(model, loader, [b[-1].float() for b in bases])
        for k, sv in enumerate(svs):
            products[k].append(sv.double())
            if i == m - 1:
                continue
            w = sv.double().clone()
            for _ in range(2):  # Gram–Schmidt, twice for stability
                for q in bases[k]:
                    w -= (w * q).sum(1, keepdim=True) * q
            norm = w.norm(dim=1, keepdim=True)
            # An exhausted Krylov space (dimension reached, invariant subspace) leaves w ≈ 0: keep it 0.
            scale = bases[k][0].abs().amax(1, keepdim=True)
            bases[k].append(torch.where(norm > 1e-9 * scale, w / norm.clamp_min(1e-300), torch.zeros_like(w)))
    out = []
    for basis, prods in zip(bases, products):
        V, SV = torch.stack(basis, 1).numpy(), torch.stack(prods, 1).numpy()  # (C, m, dim)
        lam, vec = np.empty(V.shape[0]), np.empty((V.shape[0], V.shape[2]))
        for c in range(V.shape[0]):
            gram, proj = V[c] @ V[c].T, V[c] @ SV[c].T
            g, u = np.linalg.eigh(gram)
            keep = g > 1e-10 * g.max()
            W = u[:, keep] / np.sqrt(g[keep])  # orthonormalises the (possibly rank-deficient) basis
            theta, y = np.linalg.eigh(W.T @ (0.5 * (proj + proj.T)) @ W)
            v = (W @ y[:, 0]) @ V[c]
            lam[c], vec[c] = theta[0], v / np.linalg.norm(v)
        out.append(SplitIndex(lam, torch.from_numpy(vec).float()))
    return out


def splitting_index(
    model: SplitNet, loader: DataLoader, config: EigenConfig | None = None, quiet: bool = True
) -> list[SplitIndex]:
    """Minimum eigenvalue and eigenvector of every neuron's splitting matrix, one :class:`SplitIndex` per layer."""
    config = config or EigenConfig()
    if config.method == "exact":
        return _exact_index(model, loader)
    return _fast_index(model, loader, config, quiet=quiet)
