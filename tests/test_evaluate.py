import numpy as np
import pytest

from hwlat.predict.evaluate import metrics, scatter_png, split_ops


def test_metrics_on_hand_computed_example():
    true = np.array([1.0, 2.0, 4.0, 10.0])
    pred = np.array([1.04, 2.3, 3.9, 10.0])  # rel errors 4 %, 15 %, 2.5 %, 0 %
    m = metrics(pred, true)
    assert m.n == 4
    assert m.mape == pytest.approx((0.04 + 0.15 + 0.025 + 0) / 4)
    assert m.acc5 == 0.75 and m.acc10 == 0.75
    assert m.rmse_ms == pytest.approx(np.sqrt((0.04**2 + 0.3**2 + 0.1**2) / 4))
    assert m.spearman == pytest.approx(1.0)


def test_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="same non-zero length"):
        metrics([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="> 0"):
        metrics([1.0, 2.0], [0.0, 2.0])


def test_split_is_deterministic_and_disjoint():
    keys = [f"op{i}" for i in range(1000)]
    tr, te = split_ops(keys, 0.2, seed=1)
    tr2, te2 = split_ops(keys, 0.2, seed=1)
    assert (te == te2).all() and not (tr & te).any() and (tr | te).all()
    assert 0.15 < te.mean() < 0.25


def test_scatter_png(tmp_path):
    pts = {"mbconv": (np.array([1.0, 2.0]), np.array([1.1, 1.9])), "networks": (np.array([5.0]), np.array([5.5]))}
    path = scatter_png(pts, tmp_path / "s.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
