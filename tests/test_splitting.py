"""Splitting: auxiliary-activation S·v, exact vs fast indices, the split itself, knapsack, stages."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from hwlat.devices import create_backend  # noqa: E402
from hwlat.predict import LatencyPredictor  # noqa: E402
from hwlat.search._trainloop import TrainConfig  # noqa: E402
from hwlat.search.splitting import (  # noqa: E402
    EigenConfig,
    SplitConfig,
    SplitLinear,
    SplitNet,
    choose_neurons,
    knapsack_dp,
    knapsack_lp,
    neuron_widths,
    resize_network,
    run_splitting,
    splitting_index,
    splitting_matrices,
    splitting_products,
)
from hwlat.spaces import get_space  # noqa: E402
from hwlat.zoo import get_network  # noqa: E402

FAKE = create_backend("fake")


def tiny_net(resolution: int = 8):
    return get_network("mobilenet-digits", width_mult=0.125, depth=(1, 1, 1, 1), resolution=resolution)


def random_loader(resolution: int = 8, n: int = 48, batch: int = 16, seed: int = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, resolution, resolution, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)


def model_with_stats(net, seed: int = 0) -> SplitNet:
    """A model whose BN layers have non-trivial scales and data-matched running statistics (as after training)."""
    torch.manual_seed(seed)
    model = SplitNet(net)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.3, 0.3)
            m.momentum = None  # cumulative average: running stats = the data's statistics
        model.train()
        for x, _ in random_loader(net.input_shape[-1], seed=seed + 10):
            model(x)
    for m in bns:
        m.momentum = 0.1
    return model


# ------------------------------------------------------------ S·v and S
def test_auxiliary_activation_gives_the_explicit_product():
    model = model_with_stats(tiny_net())
    loader = random_loader()
    mats = splitting_matrices(model, loader)
    assert [S.shape[0] for S in mats] == neuron_widths(model.network)
    gen = torch.Generator().manual_seed(1)
    vs = [torch.randn(S.shape[0], S.shape[1], generator=gen) for S in mats]
    for S, v, sv in zip(mats, vs, splitting_products(model, loader, vs)):
        explicit = torch.einsum("cde,ce->cd", S, v)
        assert torch.allclose(sv, explicit, rtol=1e-4, atol=1e-7 * float(explicit.abs().max()))
        assert torch.allclose(S, S.transpose(1, 2), atol=1e-7)  # splitting matrices are symmetric
    assert all(m.aux_y is None and not m.record for m in model.neurons)  # the model is left clean


def test_split_linear_layer_product():
    torch.manual_seed(0)
    layer = SplitLinear(torch.nn.Linear(5, 3), "relu6")
    x = torch.randn(7, 5)
    layer.eval()
    layer.record = True
    out = layer(x)
    g = torch.randn_like(out)
    # Explicit S for loss = sum(g * out): S_c = Σ_n g_nc σ''(z_nc) x_n x_nᵀ.
    from hwlat.search._splitnet import act_second_derivative

    w = g * act_second_derivative("relu6", layer.saved[1])
    S = torch.einsum("nc,nd,ne->cde", w, x, x)
    v = torch.randn(3, 5)
    layer.record = False
    layer.aux_y = torch.zeros(3, 5, requires_grad=True)
    layer.aux_v = v
    (sv,) = torch.autograd.grad((g * layer(x)).sum(), layer.aux_y)
    assert torch.allclose(sv, torch.einsum("cde,ce->cd", S, v), atol=1e-6)


def test_fast_index_matches_exact():
    model = model_with_stats(tiny_net(), seed=3)
    loader = random_loader(n=32, batch=32)
    exact = splitting_index(model, loader, EigenConfig(method="exact"))
    # Gradient descent alone (the paper's method, no Krylov refinement).
    fast = splitting_index(model, loader, EigenConfig(sweeps=300, lr=0.02, lr_decay=0.99, seed=0, refine=0))
    lam = np.concatenate([s.eigenvalues for s in exact])
    lam_fast = np.concatenate([s.eigenvalues for s in fast])
    top = np.argsort(lam)[:5]
    assert np.all(lam_fast >= lam - 1e-6 * np.abs(lam).max())  # a Rayleigh quotient never goes below λ_min
    np.testing.assert_allclose(lam_fast[top], lam[top], rtol=0.05)
    cos = np.concatenate([(a.eigenvectors * b.eigenvectors).sum(1).abs().numpy() for a, b in zip(exact, fast)])
    assert np.all(cos[top] > 0.95)


def test_krylov_refinement_recovers_every_exact_eigenpair():
    model = model_with_stats(tiny_net(), seed=3)
    loader = random_loader(n=32, batch=32)
    exact = splitting_index(model, loader, EigenConfig(method="exact"))
    lam = np.concatenate([s.eigenvalues for s in exact])
    dims = [s.eigenvectors.shape[1] for s in exact]

    def agreement(config):
        fast = splitting_index(model, loader, config)
        lam_fast = np.concatenate([s.eigenvalues for s in fast])
        cos = np.concatenate([(a.eigenvectors * b.eigenvectors).sum(1).abs().numpy() for a, b in zip(exact, fast)])
        return np.abs(lam_fast - lam) / np.abs(lam), cos

    # Two sweeps leave gradient descent far from converged ...
    rel, _ = agreement(EigenConfig(sweeps=2, refine=0))
    assert rel.max() > 0.05
    # ... a full Krylov space (m = the largest neuron dimension) makes the Ritz pair exact, ...
    rel, cos = agreement(EigenConfig(sweeps=2, refine=max(dims)))
    assert rel.max() < 1e-3 and cos.min() > 0.999
    # ... and the default 40 sweeps + 8 Krylov steps get every neuron within 5 %.
    rel, cos = agreement(EigenConfig())
    assert rel.max() < 0.05 and np.mean(cos > 0.95) == 1.0


# ----------------------------------------------------------------- the split
def test_split_with_zero_epsilon_keeps_the_function():
    net = tiny_net()
    model = model_with_stats(net).eval()
    index = splitting_index(model, random_loader(), EigenConfig(method="exact"))
    choice = {0: np.array([0]), 2: np.array([1, 2]), 4: np.array([0, 3])}
    vectors = {k: index[k].eigenvectors[idx] for k, idx in choice.items()}
    x = torch.randn(4, 3, 8, 8)
    split0 = model.split(choice, vectors, epsilon=0.0).eval()
    assert split0.widths == [w + len(choice.get(k, ())) for k, w in enumerate(model.widths)]
    assert split0.network == resize_network(net, split0.widths)
    with torch.no_grad():
        torch.testing.assert_close(split0(x), model(x), rtol=1e-5, atol=1e-6)
        moved = model.split(choice, vectors, epsilon=0.5).eval()(x)
        assert float((moved - model(x)).abs().max()) > 1e-4
    # Offspring: θ ± ε·v, the second appended after the old channels.
    w_old, w_new = model.neurons[0].weight, model.split(choice, vectors, epsilon=0.5).neurons[0].weight
    v = vectors[0][0].reshape(w_old.shape[1:])
    torch.testing.assert_close(w_new[0], w_old[0] + 0.5 * v)
    torch.testing.assert_close(w_new[-1], w_old[0] - 0.5 * v)


def test_split_rejects_bad_choices():
    model = SplitNet(tiny_net())
    with pytest.raises(ValueError, match="Invalid neuron indices"):
        model.split({0: np.array([0, 0])}, {0: torch.zeros(2, 27)})
    with pytest.raises(ValueError, match="split directions"):
        model.split({0: np.array([0])}, {0: torch.zeros(2, 27)})


def test_resize_network_and_unsupported_kinds():
    net = tiny_net()
    wide = resize_network(net, [3, 4, 5, 6, 7])
    assert neuron_widths(wide) == [3, 4, 5, 6, 7]
    assert [op.cin for op in wide.ops if op.kind == "dwconv"] == [3, 4, 5, 6]
    assert wide.ops[-1].cin == 7
    with pytest.raises(ValueError, match="need 5 channel counts"):
        resize_network(net, [3, 4])
    with pytest.raises(ValueError, match="mbconv"):
        SplitNet(get_network("proxyless-mobile", resolution=32))


# ------------------------------------------------------------------ knapsack
def test_knapsack_lp_on_hand_made_instances():
    # Ratios 1.5, 2, 2: the LP fills the two cheap items and stops (value 4 = the optimum).
    res = knapsack_lp([3, 2, 2], [2, 1, 1], 2)
    assert res.chosen.tolist() == [False, True, True]
    assert res.value == 4 and res.cost == 2 and res.lp_value == pytest.approx(4)
    # A fractional item is left out: LP value 5 + 0.5 * 4, integer choice 5 (feasible, below the bound).
    res = knapsack_lp([5, 4], [2, 2], 3)
    assert res.chosen.tolist() == [True, False]
    assert res.beta.tolist() == pytest.approx([1.0, 0.5])
    assert res.lp_value == pytest.approx(7.0)
    # Items without gain are never chosen, even when free room remains.
    assert knapsack_lp([1, 0, -2], [1, 1, 1], 10).chosen.tolist() == [True, False, False]
    # Group caps: at most one item from group 0.
    res = knapsack_lp([3, 3, 1], [1, 1, 1], 10, groups=[0, 0, 1], caps=[1, 5])
    assert res.chosen.sum() == 2 and res.chosen[2]
    with pytest.raises(ValueError, match="costs must be finite and > 0"):
        knapsack_lp([1], [0], 1)


def test_knapsack_dp_is_exact():
    chosen, value = knapsack_dp([5, 4, 3], [2, 2, 1], 3)
    assert value == 8 and chosen.tolist() == [True, False, True]
    chosen, value = knapsack_dp([10, 7, 7], [5, 3, 3], 6)
    assert value == 14 and chosen.tolist() == [False, True, True]
    with pytest.raises(ValueError, match="integer costs"):
        knapsack_dp([1.0], [0.5], 1)


def test_lp_choice_is_feasible_and_within_the_bound_on_random_instances():
    rng = np.random.default_rng(0)
    for _ in range(25):
        n = int(rng.integers(5, 31))
        gains, costs = rng.uniform(0.1, 10, n), rng.integers(1, 50, n)
        budget = int(rng.integers(10, int(costs.sum())))
        lp = knapsack_lp(gains, costs, budget)
        _, best = knapsack_dp(gains, costs, budget)
        assert lp.cost <= budget
        assert lp.value <= best + 1e-9 <= lp.lp_value + 1e-6


def test_choose_neurons_vanilla_and_energy():
    from hwlat.search.splitting import SplitIndex

    index = [
        SplitIndex(np.array([-3.0, -1.0, 0.5]), torch.zeros(3, 2)),
        SplitIndex(np.array([-2.0, -2.5]), torch.zeros(2, 2)),
    ]
    widths, caps = [3, 2], [6, 3]
    # Vanilla: round(0.4 * 5) = 2 most negative, but layer 1 may only grow by 1.
    assert {
        k: v.tolist() for k, v in choose_neurons(index, "vanilla", 0.4, widths=widths, max_widths=caps).items()
    } == {0: [0], 1: [1]}
    # Energy: layer 0 costs 10 per neuron, layer 1 costs 1; budget 11 buys one expensive + one cheap neuron.
    got = choose_neurons(index, "energy", 0.5, widths=widths, max_widths=caps, costs_ms=[10, 1], budget_ms=11)
    assert {k: v.tolist() for k, v in got.items()} == {0: [0], 1: [1]}
    got = choose_neurons(index, "energy", 0.5, widths=widths, max_widths=[6, 4], costs_ms=[10, 1], budget_ms=2)
    assert {k: v.tolist() for k, v in got.items()} == {1: [0, 1]}
    with pytest.raises(ValueError, match="energy, vanilla"):
        choose_neurons(index, "greedy", 0.5, widths=widths, max_widths=caps)


def test_choose_neurons_in_blocks_keeps_widths_multiples():
    from hwlat.search.splitting import SplitIndex

    lam0 = np.array([-5.0, -4.0, -3.0, -2.0, -1.0, 0.5, 0.7, 0.9])
    lam1 = np.array([-0.1, -0.1, 0.3, 0.3])  # its only block has a positive Σλ: never a candidate
    index = [SplitIndex(lam0, torch.zeros(8, 2)), SplitIndex(lam1, torch.zeros(4, 2))]
    got = choose_neurons(index, "vanilla", 0.5, widths=[8, 4], max_widths=[32, 32], granularity=4)
    # round(0.5 * 12 / 4) = 2 blocks wanted; layer 0's blocks: [0..3] gain 14, [4..7] gain -1.1 (excluded).
    assert {k: v.tolist() for k, v in got.items()} == {0: [0, 1, 2, 3]}
    got = choose_neurons(
        index, "energy", 0.5, widths=[8, 4], max_widths=[32, 32], costs_ms=[1.0, 1.0], budget_ms=100.0, granularity=4
    )
    assert {k: v.tolist() for k, v in got.items()} == {0: [0, 1, 2, 3]}
    # A budget below one block's cost (4 x 1 ms) splits nothing.
    assert (
        choose_neurons(
            index, "energy", 0.5, widths=[8, 4], max_widths=[32, 32], costs_ms=[1.0, 1.0], budget_ms=3.9, granularity=4
        )
        == {}
    )
    with pytest.raises(ValueError, match="granularity"):
        choose_neurons(index, "vanilla", 0.5, widths=[8, 4], max_widths=[32, 32], granularity=0)


def test_config_validation_names_valid_values():
    with pytest.raises(ValueError, match="energy, vanilla"):
        SplitConfig(mode="random")
    with pytest.raises(ValueError, match="fast, exact"):
        EigenConfig(method="lanczos")
    with pytest.raises(ValueError, match="refine=-1"):
        EigenConfig(refine=-1)


# ------------------------------------------------------------------- stages
@pytest.fixture(scope="module")
def fake_predictor():
    ops = get_space("digits-widths").sample(300, seed=0)
    ops += list(tiny_net().ops)
    return LatencyPredictor(model="prior").fit(ops, [FAKE.true_latency_s(o) * 1e3 for o in ops])


def test_run_splitting_stages_respect_the_latency_budget(fake_predictor):
    from types import SimpleNamespace

    from hwlat.cost import WidthLatency

    seed = tiny_net()
    loaders = SimpleNamespace(
        train=random_loader(n=64), valid=random_loader(n=32, seed=1), test=random_loader(n=32, seed=2)
    )
    latency = WidthLatency(fake_predictor, lambda w: resize_network(seed, w), neuron_widths(seed), max_width=64)
    config = SplitConfig(
        growth=0.5,
        stages=2,
        eigen=EigenConfig(method="exact"),
        granularity=1,
        seed_train=TrainConfig(epochs=1),
        stage_train=TrainConfig(epochs=1),
    )
    seen = []
    stages = run_splitting(
        seed, loaders, fake_predictor, config, latency=latency, on_stage=lambda r, m: seen.append((r.stage, m.widths))
    )
    assert [s.stage for s in stages] == [0, 1, 2] == [k for k, _ in seen]
    for prev, cur in zip(stages, stages[1:]):
        assert cur.n_split > 0 and sum(cur.widths) == sum(prev.widths) + cur.n_split
        assert list(cur.widths) == neuron_widths(cur.network)
        # The surrogate latency grows by at most a factor 1 + α (budget repaired after the linear knapsack).
        assert latency.latency_ms(cur.widths) <= 1.5 * latency.latency_ms(prev.widths) * (1 + 1e-9)
        assert 0 <= cur.test_acc <= 1 and cur.predicted_ms > 0
    vanilla = run_splitting(seed, loaders, fake_predictor, config.replace(mode="vanilla", stages=1), latency=latency)
    total = sum(vanilla[0].widths)
    assert 0 < vanilla[1].n_split <= round(0.5 * total)  # the most negative λ only, at most α·N
