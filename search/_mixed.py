"""ProxylessNAS mixed operations: binary gates, one active path, memory-saving gate gradients.

A :class:`MixedOp` runs exactly one candidate (the active path). For an
architecture update it runs through :class:`BinaryGateFunction`, which keeps
only the block input and the active path's graph; in backward it recomputes the
other involved candidates under ``no_grad`` to get
``∂L/∂g_j = <∂L/∂y, o_j(x)>`` (paper Appendix D, Eq. 9), so memory stays that
of one path. :func:`gate_alpha_grad` turns gate gradients into architecture
gradients (Eq. 4) and :func:`rescale_pair` keeps the probabilities of the
unsampled paths fixed after a two-path update (Sec. 3.2.1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hwlat._modules import Zero

__all__ = ["MixedOp", "BinaryGateFunction", "gate_alpha_grad", "rescale_pair", "sample_pair", "GATE_MODES"]

GATE_MODES = ("two", "full")


class BinaryGateFunction(torch.autograd.Function):
    """``y = Σ_j g_j o_j(x)`` with one-hot ``g``: computes only the active path.

    Backward returns ``∂L/∂x`` through the active path and ``∂L/∂g_j`` for the
    mixed op's ``involved`` paths (0 for the others), recomputing inactive
    paths' outputs from the saved input; their outputs are never kept. The
    candidates' weights get no gradient: they are frozen in an architecture step.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, gates: torch.Tensor, op: MixedOp) -> torch.Tensor:
        detached = x.detach().requires_grad_(ctx.needs_input_grad[0])
        with torch.enable_grad():
            out = op.candidates[op.active](detached)
        ctx.op, ctx.x, ctx.out = op, detached, out
        ctx.active, ctx.involved, ctx.n = op.active, tuple(op.involved), gates.numel()
        return out.detach()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        op, x, out = ctx.op, ctx.x, ctx.out
        ctx.x = ctx.out = None  # free the saved graph as soon as possible
        grad_x = None
        if ctx.needs_input_grad[0] and out.requires_grad:
            (grad_x,) = torch.autograd.grad(out, x, grad_out)
        grad_gates = None
        if ctx.needs_input_grad[1]:
            grad_gates = grad_out.new_zeros(ctx.n)
            with torch.no_grad():
                for j in ctx.involved:
                    if isinstance(op.candidates[j], Zero):
                        continue  # a zero path's output is 0, and so is its gate gradient
                    o_j = out.detach() if j == ctx.active else op.candidates[j](x.detach())
                    grad_gates[j] = (grad_out * o_j).sum()
        return grad_x, grad_gates, None


class MixedOp(nn.Module):
    """One searchable block: candidate modules, one active; identity shortcut outside them.

    Parameters
    ----------
    candidates : sequence of nn.Module
        Each maps the block input to the block output (no shortcut of their
        own; a :class:`~hwlat._modules.Zero` module is the skip choice).
    shortcut : bool
        Add the input to the output (ProxylessNAS ``MobileInvertedResidualBlock``).

    Attributes
    ----------
    active : int
        Index of the path that runs.
    involved : tuple of int
        Paths whose gate gradient an architecture step computes.
    gates : torch.Tensor or None
        One-hot binary gates (a leaf requiring grad) during an architecture
        step; ``None`` otherwise, and then the active path runs as a plain module.
    """

    def __init__(self, candidates: Sequence[nn.Module], shortcut: bool) -> None:
        super().__init__()
        if not candidates:
            raise ValueError("MixedOp needs at least one candidate")
        self.candidates = nn.ModuleList(candidates)
        self.shortcut = shortcut
        self.active = 0
        self.involved: tuple[int, ...] = (0,)
        self.gates: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.candidates)

    def set_gates(self, active: int, involved: Sequence[int] | None) -> torch.Tensor | None:
        """Select the active path; with ``involved``, also make fresh binary gates (returned) for an arch step."""
        if not 0 <= active < len(self.candidates):
            raise ValueError(f"Invalid active path {active}: the block has {len(self.candidates)} candidates")
        self.active = int(active)
        if involved is None:
            self.involved, self.gates = (self.active,), None
            return None
        self.involved = tuple(int(j) for j in involved)
        if self.active not in self.involved:
            raise ValueError(f"the active path {active} must be one of the involved paths {self.involved}")
        gates = torch.zeros(len(self.candidates))
        gates[self.active] = 1.0
        self.gates = gates.requires_grad_(True)
        return self.gates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gates is not None:
            y = BinaryGateFunction.apply(x, self.gates, self)
        else:
            y = self.candidates[self.active](x)
        return x + y if self.shortcut else y


def gate_alpha_grad(alpha: torch.Tensor, gate_grad: torch.Tensor, involved: Sequence[int]) -> torch.Tensor:
    """Eq. 4 over the involved paths: ``∂L/∂α_i = Σ_j ∂L/∂g_j · p_j (δ_ij − p_i)``, ``p = softmax(α[involved])``.

    Entries of paths not involved get 0.
    """
    idx = torch.as_tensor(list(involved), dtype=torch.long)
    p = torch.softmax(alpha.detach()[idx], 0)
    g = gate_grad.detach()[idx].to(p.dtype)
    out = torch.zeros_like(alpha, dtype=p.dtype)
    out[idx] = p * (g - (g * p).sum())  # = p_i g_i − p_i Σ_j g_j p_j
    return out.to(alpha.dtype)


def rescale_pair(alpha: torch.Tensor, before: torch.Tensor, involved: Sequence[int]) -> None:
    """Shift the updated logits of the sampled paths so Σ exp over them is what it was ``before`` the update.

    Softmax probabilities of every other path are then exactly unchanged
    (in place, on ``alpha``'s data).
    """
    idx = torch.as_tensor(list(involved), dtype=torch.long)
    with torch.no_grad():
        offset = torch.logsumexp(alpha[idx], 0) - torch.logsumexp(before[idx], 0)
        alpha[idx] -= offset


def sample_pair(
    probs: torch.Tensor, alpha: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[int, tuple[int, int]]:
    """Two distinct paths drawn from ``probs``; the active one drawn from softmax over the pair's logits."""
    pair = torch.multinomial(probs.detach(), 2, replacement=False, generator=generator)
    inner = torch.softmax(alpha.detach()[pair], 0)
    which = int(torch.multinomial(inner, 1, generator=generator))
    return int(pair[which]), (int(pair[0]), int(pair[1]))
