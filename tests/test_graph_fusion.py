"""hwlat.graph.fusion and hwlat fusion-rules: pair-vs-parts timing, learned rule sets, storage, use in prediction."""

import pytest

from hwlat.graph import detect_kernels, rule_set
from hwlat.graph.fusion import PAIRS, FusionRules, PairResult, learned_rule_set, pair_models, run_pair_tests


def result(name, head, follower, share, default=True, head_ms=1.0, follower_ms=0.5, overhead=0.1):
    pair = head_ms + share * (follower_ms - overhead)
    return PairResult(name, head, follower, pair, head_ms, follower_ms, overhead, default)


def test_verdict_is_the_followers_share_of_its_own_cost():
    fused = result("conv+relu", "conv", "relu", 0.1)
    separate = result("add+relu", "add", "relu", 0.9)
    assert fused.fused and not fused.differs and fused.follower_share == pytest.approx(0.1)
    assert not separate.fused and separate.differs


def test_learned_rules_drop_what_did_not_fuse_and_keep_what_was_not_tested():
    pairs = [
        result("conv+relu", "conv", "relu", 0.0),
        result("conv+hardswish", "conv", "hardswish", 1.0),
        result("conv+add", "conv", "add", 1.0),
        result("add+relu", "add", "relu", 1.0),
    ]
    learned = learned_rule_set(rule_set("onnxruntime"), pairs)
    conv = next(p for p in learned.kernels if p.name == "conv" and p.steps[0].ops == {"conv"})
    acts = [s for s in conv.steps[1:] if "relu" in s.ops or "silu" in s.ops]
    assert acts and all("relu" in s.ops and "hardswish" not in s.ops and "silu" in s.ops for s in acts)
    assert (
        len(conv.steps)
        == len(
            next(p for p in rule_set("onnxruntime").kernels if p.name == "conv" and p.steps[0].ops == {"conv"}).steps
        )
        - 1
    )  # the residual add is gone
    elementwise = next(p for p in learned.kernels if p.name == "elementwise")
    assert all("relu" not in s.ops for s in elementwise.steps[1:])
    assert next(p for p in learned.kernels if p.name == "attention") in rule_set("onnxruntime").kernels


def test_detection_follows_the_learned_rules():
    (pair, _head, _follower) = pair_models("conv+hardswish", "conv", "hardswish")
    g = pair.graph()
    assert len(detect_kernels(g, device="onnxruntime-cpu")) == 1
    learned = learned_rule_set(rule_set("onnxruntime"), [result("conv+hardswish", "conv", "hardswish", 1.0)])
    assert [k.type for k in detect_kernels(g, learned)] == ["conv", "activation"]


def test_pair_tests_measure_in_order_and_round_trip_json():
    from hwlat.devices import create_backend
    from hwlat.measure import Protocol

    seen = []

    def measure(items):
        seen.extend(items)
        # overhead 0.1; conv pairs cost their head (fused), the others head + follower
        out = [0.1]
        for i in range(1, len(items), 3):
            fused = "conv" in items[i].name
            out += [1.0 if fused else 1.4, 1.0, 0.5]
        return out

    rules = run_pair_tests(create_backend("fake"), Protocol.fixed(), pattern="*", measure=measure)
    assert len(seen) == 1 + 3 * len(PAIRS) and seen[1].name.endswith("-pair") and seen[2].name.endswith("-head")
    verdict = rules.fused()
    assert verdict["conv+relu"] and not verdict["add+relu"] and not verdict["linear+gelu"]
    again = FusionRules.from_json(rules.to_json())
    assert again.fused() == verdict and again.device_key == "fake/t1/b1/fp32"
    assert "DIFFERS" in rules.table()
    with pytest.raises(ValueError, match="no fusion pair matches"):
        run_pair_tests(create_backend("fake"), Protocol.fixed(), pattern="nothing*", measure=measure)


def test_cli_stores_rules_and_fit_uses_them(tmp_path, capsys):
    from hwlat.cli.main import main
    from hwlat.predict import LatencyPredictor
    from hwlat.predict.model import learned_rules
    from hwlat.store import LatencyStore

    db = tmp_path / "t.db"
    assert main(["fusion-rules", "--device", "fake", "--db", str(db), "--pairs", "add+*", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "add+relu" in out and "stored in" in out
    assert main(["measure", "--device", "fake", "--space", "add", "--n", "20", "--db", str(db), "--quiet"]) == 0
    with LatencyStore(db) as store:
        stored = FusionRules.from_json(store.fusion_rules("fake/t1/b1/fp32"))
        assert len(store.frame()) >= 20 + 1 + 3 * 2  # the pair models are rows of the table too
    p = LatencyPredictor().fit_table(db, device="fake/t1/b1/fp32")
    assert FusionRules.from_json(p.fusion_rules_).fused() == stored.fused()
    assert learned_rules(p).name == "default+learned"
    assert main(["fusion-rules", "--device", "fake", "--db", str(db), "--show"]) == 0
    assert "default+learned" in capsys.readouterr().out
    assert main(["fusion-rules", "--device", "litert-cpu", "--db", str(db), "--show"]) == 1
    assert "no fusion rules for litert-cpu" in capsys.readouterr().err
