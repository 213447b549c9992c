"""Energy-(latency-)aware splitting steepest descent (Wang et al., "fast splitting"; Wu et al. 2019).

A network grows in stages. After training, every neuron's *splitting index*
is the minimum eigenvalue λ of its splitting matrix S = E[∂Φ/∂σ · ∇²_θ σ(θ, x)]
(the loss drops by about ε²λ/2 when the neuron is split into θ ± ε·v along the
eigenvector v). Neurons to split are chosen by the knapsack of Eq. 6: maximise
Σ −λ subject to Σ cost ≤ budget, where a neuron's cost is the increase of the
network's *predicted device latency* when its layer gains one channel
(:class:`hwlat.cost.WidthLatency`, re-evaluated at every stage) and the budget
lets the latency grow by at most a factor 1 + α per stage. The knapsack is
solved by its LP relaxation (``scipy.optimize.linprog``, HiGHS), keeping β > 0.9.

λ and v are computed either exactly (form S, eigen-decompose: small layers,
checks) or fast (Rayleigh-quotient gradient descent with RMSprop on v, where
S·v of every neuron comes from one backward pass through an auxiliary
activation: paper Sec. 4). A ``vanilla`` mode (Wu et al.: the most negative
λ, no costs) is there for comparison.

Examples
--------
>>> # from hwlat.search.data import digits_loaders
>>> # stages = run_splitting(get_network("mobilenet-digits", width_mult=0.25), digits_loaders(), predictor)
>>> # [(s.widths, s.predicted_ms, s.test_acc) for s in stages]

Layout: :mod:`~hwlat.search.splitting.config` (settings and results),
:mod:`~hwlat.search.splitting.eigen` (splitting indices),
:mod:`~hwlat.search.splitting.knapsack` (which neurons to split) and
:mod:`~hwlat.search.splitting.growth` (the stage loop).
"""

from hwlat.search._splitnet import SplitConv2d, SplitLinear, SplitNet, neuron_widths, resize_network
from hwlat.search.splitting.config import EIGEN_METHODS, MODES, EigenConfig, SplitConfig, StageResult
from hwlat.search.splitting.eigen import SplitIndex, splitting_index, splitting_matrices, splitting_products

# _cost_floor is private but benchmarks/splitting_width.py imports it from here (explicit re-export).
from hwlat.search.splitting.growth import _cost_floor as _cost_floor
from hwlat.search.splitting.growth import run_splitting, width_grid
from hwlat.search.splitting.knapsack import KnapsackResult, choose_neurons, knapsack_dp, knapsack_lp

__all__ = [
    "SplitConv2d",
    "SplitLinear",
    "SplitNet",
    "EigenConfig",
    "SplitConfig",
    "SplitIndex",
    "StageResult",
    "KnapsackResult",
    "MODES",
    "EIGEN_METHODS",
    "splitting_matrices",
    "splitting_products",
    "splitting_index",
    "knapsack_lp",
    "knapsack_dp",
    "choose_neurons",
    "run_splitting",
    "width_grid",
    "resize_network",
    "neuron_widths",
]
