"""Settings and results of a splitting run: :class:`EigenConfig`, :class:`SplitConfig`, :class:`StageResult`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from hwlat.network import Network
from hwlat.search._trainloop import TrainConfig

__all__ = ["MODES", "EIGEN_METHODS", "EigenConfig", "SplitConfig", "StageResult"]

MODES = ("energy", "vanilla")
EIGEN_METHODS = ("fast", "exact")


@dataclass(frozen=True)
class EigenConfig:
    """How splitting indices are computed.

    Parameters
    ----------
    method : str
        ``fast`` (Rayleigh-quotient descent, auxiliary activation) or ``exact``
        (form S and eigen-decompose).
    sweeps : int
        Fast: passes T over the training split.
    lr : float
        Fast: RMSprop learning rate on v (momentum 0.9, α 0.9 as in the official code).
    lr_decay : float
        Fast: learning-rate factor applied after every sweep.
    init_scale : float
        Fast: v starts uniform in (−init_scale, init_scale), then is normalised.
    seed : int
        Fast: seed of v's initialisation.
    refine : int
        Fast: after the sweeps, Rayleigh–Ritz on the Krylov space
        span{v, Sv, …, S^(m−1)v} of each neuron, m = ``refine`` (m passes over
        the data, S·v again from the auxiliary activation; S is never formed).
        Gradient descent alone stalls on neurons whose two smallest eigenvalues
        are close, or whose S is small next to the other neurons' (it then
        returns the second eigenpair or an unconverged v); 0 or 1 = off, the
        paper's method as it is.
    """

    method: str = "fast"
    sweeps: int = 40
    lr: float = 2e-2
    lr_decay: float = 0.9
    init_scale: float = 0.1
    seed: int = 0
    refine: int = 8

    def __post_init__(self) -> None:
        if self.method not in EIGEN_METHODS:
            raise ValueError(f"Invalid eigen method {self.method!r}; valid: {', '.join(EIGEN_METHODS)}")
        if self.sweeps < 1:
            raise ValueError(f"Invalid sweeps={self.sweeps}: must be >= 1")
        if self.refine < 0:
            raise ValueError(f"Invalid refine={self.refine}: must be >= 0 (0 or 1 = no Krylov refinement)")


@dataclass(frozen=True)
class SplitConfig:
    """One splitting run: stages, growth, neuron choice and training.

    Parameters
    ----------
    growth : float
        α. ``energy``: the predicted latency may grow by at most a factor
        1 + α per stage. ``vanilla``: a fraction α of the neurons is split.
    stages : int
        Splitting stages K after the seed (networks Splitting-0 … Splitting-K).
    mode : str
        ``energy`` (latency-aware knapsack) or ``vanilla`` (most negative λ).
    epsilon : float
        Split step ε (θ ± ε·v̂).
    max_growth : float
        No layer grows beyond this multiple of its seed width.
    threshold : float
        Knapsack: split the neurons whose relaxed β exceeds this.
    granularity : int
        Neurons are split in blocks of this many per layer, so widths stay
        multiples of it (ONNX Runtime's CPU depthwise convs run 3-7x faster
        on channel counts that are multiples of 4); 1 = the paper's choice.
    eigen : EigenConfig
        Splitting-index computation.
    seed_train, stage_train : TrainConfig
        Training of the seed network and after each split.
    """

    growth: float = 0.5
    stages: int = 4
    mode: str = "energy"
    epsilon: float = 0.1
    max_growth: float = 8.0
    threshold: float = 0.9
    granularity: int = 4
    eigen: EigenConfig = field(default_factory=EigenConfig)
    seed_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30))
    stage_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=15, lr=0.02))

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Invalid splitting mode {self.mode!r}; valid: {', '.join(MODES)}")
        if not self.growth > 0:
            raise ValueError(f"Invalid growth={self.growth}: must be > 0")
        if self.stages < 0:
            raise ValueError(f"Invalid stages={self.stages}: must be >= 0")
        if not 0 < self.threshold < 1:
            raise ValueError(f"Invalid threshold={self.threshold}: must be in (0, 1)")
        if self.granularity < 1:
            raise ValueError(f"Invalid granularity={self.granularity}: must be >= 1")

    def replace(self, **changes) -> SplitConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class StageResult:
    """One network of a splitting run (Splitting-k)."""

    stage: int
    network: Network
    widths: tuple[int, ...]
    predicted_ms: float
    valid_acc: float
    test_acc: float
    n_split: int
    split_per_layer: tuple[int, ...]
    index_seconds: float
    train_seconds: float
    train_macs: int
