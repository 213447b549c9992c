"""Splittable networks: conv/linear neurons with an auxiliary activation, built from an hwlat Network.

A *neuron* is one output channel of a conv-BN-activation layer (or one output
of a linear-activation layer) together with its incoming weights θ. Splitting
it (Wang et al. 2019, Eq. 5) replaces it by two copies θ ± ε·v whose
outgoing weights are halved; per-channel ops that follow it (a MobileNet
block's depthwise conv, pooling) are duplicated with it, as in the paper's
Sec. 5.1. :class:`SplitNet` holds the torch model of an hwlat
:class:`~hwlat.network.Network` whose ops form a chain, and knows which op
consumes which channels, so every split gives a model of a new ``Network``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwlat.network import Network

__all__ = [
    "NEURON_KINDS",
    "CHANNEL_KINDS",
    "SplitConv2d",
    "SplitLinear",
    "SplitNet",
    "act_second_derivative",
    "resize_network",
    "neuron_widths",
]

NEURON_KINDS = ("stem", "conv", "pwconv")  # conv-BN-act ops whose filters are split
CHANNEL_KINDS = ("dwconv", "gap", "identity", "avgpool", "maxpool")  # per-channel: duplicated with a split
CONSUMER_KINDS = ("linear",)  # reads channels, is not split (no activation: a linear neuron has S = 0)
SUPPORTED_KINDS = NEURON_KINDS + CHANNEL_KINDS + CONSUMER_KINDS + ("head",)
SOFTPLUS_BETA = 3.0  # the official code's smooth stand-in for ReLU's second derivative


def _dd_softplus(z: torch.Tensor, beta: float = SOFTPLUS_BETA) -> torch.Tensor:
    s = torch.sigmoid(beta * z)
    return beta * s * (1 - s)


def act_second_derivative(name: str, z: torch.Tensor) -> torch.Tensor:
    """σ''(z) of an activation; kinks are smoothed with softplus (β = 3), as the official code does for ReLU.

    ReLU's second derivative is zero almost everywhere, so the splitting
    matrix would vanish; the softplus stand-in keeps the curvature that the
    kink has in an average over inputs. ReLU6 = relu(z) - relu(z - 6).
    """
    if name == "relu":
        return _dd_softplus(z)
    if name == "relu6":
        return _dd_softplus(z) - _dd_softplus(z - 6)
    if name == "hswish":  # z * relu6(z + 3) / 6: h'' = (2 r'(z + 3) + z r''(z + 3)) / 6
        u = z + 3
        d1 = torch.sigmoid(SOFTPLUS_BETA * u) - torch.sigmoid(SOFTPLUS_BETA * (u - 6))
        d2 = _dd_softplus(u) - _dd_softplus(u - 6)
        return (2 * d1 + z * d2) / 6
    if name == "none":
        return torch.zeros_like(z)
    raise ValueError(f"Invalid activation {name!r}; valid: relu, relu6, hswish, none")


def _act(name: str, z: torch.Tensor) -> torch.Tensor:
    if name == "relu":
        return F.relu(z)
    if name == "relu6":
        return F.relu6(z)
    if name == "hswish":
        return F.hardswish(z)
    return z


class _Splittable(nn.Module):
    """Shared machinery: auxiliary activation (fast S·v) and recording for the exact S."""

    act: str

    def __init__(self) -> None:
        super().__init__()
        self.aux_y: torch.Tensor | None = None  # zeros shaped like the weight; d loss / d y = S v
        self.aux_v: torch.Tensor | None = None
        self.record = False
        self.saved: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (x, z, out)

    @property
    def weight(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def width(self) -> int:
        return self.weight.shape[0]

    @property
    def dim(self) -> int:
        """Parameters per neuron (the size of its splitting matrix)."""
        return self.weight[0].numel()

    def _finish(self, x: torch.Tensor, z: torch.Tensor, lin_y, lin_v) -> torch.Tensor:
        out = _act(self.act, z)
        if self.aux_y is not None:
            # Auxiliary activation (paper Sec. 4): zero in value (y = 0), but its gradient
            # with respect to y is σ'' c² (y·x)(v·x) differentiated in y = S v.
            c = self.coef().detach().view(1, -1, *([1] * (z.dim() - 2)))
            aux = act_second_derivative(self.act, z.detach()) * c * c * lin_y(self.aux_y) * lin_v(self.aux_v.detach())
            out = out + aux
        if self.record:
            self.saved = (x.detach(), z.detach(), out)
        return out


class SplitConv2d(_Splittable):
    """A conv → BatchNorm → activation layer whose output channels (neurons) can be split.

    Parameters
    ----------
    conv : nn.Conv2d
        Ungrouped convolution (its filters are the neurons).
    bn : nn.BatchNorm2d or None
        Normalisation after it; in eval mode it is a per-channel affine map,
        whose scale enters the splitting matrix.
    act : str
        Activation name (relu, relu6, hswish, none).
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, act: str) -> None:
        super().__init__()
        if conv.groups != 1:
            raise ValueError(f"SplitConv2d needs an ungrouped conv (groups=1), got groups={conv.groups}")
        self.conv, self.bn, self.act = conv, bn, act

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    def coef(self) -> torch.Tensor:
        """d z / d (w·x) per channel: the eval-mode BN scale γ / sqrt(var + eps), or 1."""
        if self.bn is None:
            return torch.ones(self.width, device=self.weight.device)
        return self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)

    def _lin(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return F.conv2d(x, w, None, c.stride, c.padding, c.dilation)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """Input patches (N, dim, positions), the x of w·x at each output position."""
        c = self.conv
        return F.unfold(x, c.kernel_size, c.dilation, c.padding, c.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)
        if self.bn is not None:
            z = self.bn(z)
        return self._finish(x, z, lambda w: self._lin(x, w), lambda w: self._lin(x.detach(), w))


class SplitLinear(_Splittable):
    """A linear → activation layer whose outputs (neurons) can be split."""

    def __init__(self, linear: nn.Linear, act: str) -> None:
        super().__init__()
        self.linear, self.act = linear, act

    @property
    def weight(self) -> torch.Tensor:
        return self.linear.weight

    def coef(self) -> torch.Tensor:
        return torch.ones(self.width, device=self.weight.device)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return self._finish(x, z, lambda w: F.linear(x, w), lambda w: F.linear(x.detach(), w))


# ------------------------------------------------------------------ networks
def _check_chain(network: Network) -> None:
    bad = sorted({op.kind for op in network.ops if op.kind not in SUPPORTED_KINDS})
    if bad:
        raise ValueError(
            f"Network {network.name!r} has op kinds {bad} that splitting does not support; "
            f"supported: {', '.join(SUPPORTED_KINDS)} (a chain of conv/pointwise neurons, "
            "depthwise convs and a head)"
        )
    if not any(op.kind in NEURON_KINDS or (op.kind == "head" and op.mid) for op in network.ops):
        raise ValueError(f"Network {network.name!r} has no splittable layer ({', '.join(NEURON_KINDS)})")


def neuron_widths(network: Network) -> list[int]:
    """Output channels of each splittable layer (its width slots), in order."""
    out = []
    for op in network.ops:
        if op.kind in NEURON_KINDS:
            out.append(op.cout)
        elif op.kind == "head" and op.mid:
            out.append(op.mid)
    return out


def resize_network(network: Network, widths: Sequence[int], name: str | None = None) -> Network:
    """``network`` with its splittable layers' output channels set to ``widths`` (channels follow along)."""
    _check_chain(network)
    widths = [int(w) for w in widths]
    slots = neuron_widths(network)
    if len(widths) != len(slots) or min(widths, default=1) < 1:
        raise ValueError(f"Invalid widths {widths}: need {len(slots)} channel counts >= 1 (one per splittable layer)")
    it = iter(widths)
    ops, chans = [], None
    for op in network.ops:
        cin = op.cin if chans is None else chans
        if op.kind in NEURON_KINDS:
            op = op.replace(cin=cin, cout=next(it))
            chans = op.cout
        elif op.kind == "head":
            op = op.replace(cin=cin, mid=next(it) if op.mid else 0)
            chans = None
        elif op.kind in CONSUMER_KINDS:
            op = op.replace(cin=cin)
            chans = None
        else:  # per-channel op: keeps the channel count
            op = op.replace(cin=cin, cout=cin)
            chans = cin
        ops.append(op)
    return Network(name or network.name, tuple(ops))


class SplitNet(nn.Module):
    """Trainable torch model of a chain ``Network`` whose conv/pointwise layers can be split.

    It computes exactly what ``network.build()`` computes (it wraps those
    modules), in training mode.

    Parameters
    ----------
    network : Network
        Ops of kinds :data:`NEURON_KINDS`, :data:`CHANNEL_KINDS`, ``linear`` and
        ``head``, in a chain.
    """

    def __init__(self, network: Network) -> None:
        super().__init__()
        _check_chain(network)
        self.network = network
        built = list(network.build().children())
        layers: list[nn.Module] = []
        neurons: list[_Splittable] = []
        for op, mod in zip(network.ops, built):
            if op.kind in NEURON_KINDS:
                mod = SplitConv2d(mod[0], mod[1], op.act)
                neurons.append(mod)
            elif op.kind == "head" and op.mid:
                mod.mix = SplitConv2d(mod.mix[0], mod.mix[1], op.act)
                neurons.append(mod.mix)
            layers.append(mod)
        self.layers = nn.ModuleList(layers)
        self._neurons = neurons
        self.train()

    @property
    def neurons(self) -> list[_Splittable]:
        """The splittable layers, one per width slot."""
        return list(self._neurons)

    @property
    def widths(self) -> list[int]:
        return [m.width for m in self._neurons]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    # ------------------------------------------------------------ splitting
    def split(
        self,
        choice: Mapping[int, np.ndarray],
        vectors: Mapping[int, torch.Tensor],
        epsilon: float = 0.1,
        name: str | None = None,
    ) -> SplitNet:
        """A new model where each chosen neuron became two: θ + ε·v and θ − ε·v, outgoing weights halved.

        Parameters
        ----------
        choice : mapping of int to array of int
            Splittable layer index -> indices of the neurons to split.
        vectors : mapping of int to Tensor
            Splittable layer index -> split directions, shape (len(indices), dim)
            (unit eigenvectors of the splitting matrices).
        epsilon : float
            Step size ε. With ε = 0 the new model computes the same function.
        name : str, optional
            Name of the new network.

        Notes
        -----
        The first offspring keeps the neuron's place; the second is appended
        after the layer's existing channels. Normalisation parameters and
        statistics, and the per-channel ops that follow, are copied.
        """
        idx = {i: np.asarray(choice.get(i, []), dtype=int) for i in range(len(self._neurons))}
        for i, sel in idx.items():
            width = self._neurons[i].width
            if len(sel) != len(set(sel.tolist())) or (len(sel) and (sel.min() < 0 or sel.max() >= width)):
                raise ValueError(
                    f"Invalid neuron indices for layer {i}: {sel.tolist()} (width {width}, each at most once)"
                )
            if len(sel) and tuple(vectors[i].shape[:1]) != (len(sel),):
                raise ValueError(f"layer {i}: {len(sel)} neurons chosen but {vectors[i].shape[0]} split directions")
        widths = [m.width + len(idx[i]) for i, m in enumerate(self._neurons)]
        new = SplitNet(resize_network(self.network, widths, name=name))
        new.train(self.training)
        src_in: torch.Tensor | None = None  # new channel -> old channel, of the current feature map
        half_in: torch.Tensor | None = None  # new channels whose source was split (outgoing weights halved)
        k = 0
        with torch.no_grad():
            for op, old, mod in zip(self.network.ops, self.layers, new.layers):
                if op.kind in NEURON_KINDS or (op.kind == "head" and op.mid):
                    o = old.mix if op.kind == "head" else old
                    m = mod.mix if op.kind == "head" else mod
                    src_in, half_in = _split_layer(o, m, src_in, half_in, idx[k], vectors.get(k), epsilon)
                    k += 1
                    if op.kind == "head":
                        _copy_consumer(old.classifier, mod.classifier, src_in, half_in)
                elif op.kind in ("dwconv",):
                    _copy_channels(old, mod, src_in)
                elif op.kind == "head" or op.kind in CONSUMER_KINDS:
                    lin_old = old.classifier if op.kind == "head" else old
                    lin_new = mod.classifier if op.kind == "head" else mod
                    _copy_consumer(lin_old, lin_new, src_in, half_in)
                else:  # parameter-free per-channel ops
                    pass
        return new


def _take_in(w: torch.Tensor, src: torch.Tensor | None, half: torch.Tensor | None) -> torch.Tensor:
    """Input columns of ``w`` in the new channel order, halved where the input channel was split."""
    if src is None:
        return w.clone()
    w = w[:, src].clone()
    if half is not None and half.any():
        w[:, half] = w[:, half] / 2
    return w


def _bn_copy(old: nn.BatchNorm2d | None, new: nn.BatchNorm2d | None, src: torch.Tensor) -> None:
    if old is None or new is None:
        return
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(new, name).copy_(getattr(old, name)[src])
    new.num_batches_tracked.copy_(old.num_batches_tracked)


def _split_layer(old: _Splittable, new: _Splittable, src_in, half_in, sel: np.ndarray, vecs, eps: float):
    """Copy one splittable layer with its chosen neurons split; returns its output channel mapping."""
    width = old.width
    sel_t = torch.as_tensor(sel, dtype=torch.long)
    src = torch.cat([torch.arange(width), sel_t])
    half = torch.zeros(len(src), dtype=torch.bool)
    half[sel_t] = True
    half[width:] = True
    w_old = old.weight
    w = _take_in(w_old, src_in, half_in)[src]
    if len(sel):
        # The direction, mapped to the new input channels like the weights, so the
        # change of each neuron's pre-activation is the same as in the old network.
        v = vecs.reshape(len(sel), *w_old.shape[1:]).to(w.dtype)
        v = _take_in(v, src_in, half_in)
        w[sel_t] += eps * v
        w[width:] -= eps * v
    new.weight.copy_(w)
    if isinstance(old, SplitConv2d):
        _bn_copy(old.bn, new.bn, src)
    elif old.linear.bias is not None:
        new.linear.bias.copy_(old.linear.bias[src])
    return src, half


def _copy_channels(old: nn.Sequential, new: nn.Sequential, src: torch.Tensor | None) -> None:
    """A per-channel (depthwise) conv-BN-act: every channel copied from its source."""
    if src is None:
        new.load_state_dict(old.state_dict())
        return
    new[0].weight.copy_(old[0].weight[src])
    _bn_copy(old[1], new[1], src)


def _copy_consumer(old: nn.Linear, new: nn.Linear, src, half) -> None:
    new.weight.copy_(_take_in(old.weight, src, half))
    if old.bias is not None:
        new.bias.copy_(old.bias)
