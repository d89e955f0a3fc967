"""The goals' targets checked against hand-made report docs: met, missed by the right amount, not measured."""

import pytest

from onnx_approx.pipeline.targets import MAX_REL_DROP, TARGET_SHAPE, TARGETS, Target, evaluate_targets


def report_doc(vs_fp32=4.2, vs_int8=2.1, change=-0.004, size=15.0, model=0.80, fp32=0.80, shapes=("1x128", "8x128"),
               main="accuracy"):
    """The fields of `build_report`'s dict that the targets read."""
    return {"main_metric": main, "model_engine": "approximated",
            "dev": {"relative_change_vs_fp32": change,
                    "metrics": {"approximated": {main: model}, "ort-fp32": {main: fp32}}},
            "size": {"fp32_over_model": size},
            "latency": {s: {"vs_fp32": vs_fp32, "vs_int8": vs_int8} for s in shapes}}


def by_measure(results):
    return {r.target.measure: r for r in results}


def test_thresholds_are_the_claims():
    faster = by_measure(evaluate_targets(report_doc(), "faster"))
    assert {m: r.target.threshold for m, r in faster.items()} == {"vs_fp32": 4.0, "vs_int8": 2.0, "rel_drop": 0.005}
    assert [t.threshold for t in TARGETS["smaller"]] == [14.0, MAX_REL_DROP]
    assert [t.threshold for t in TARGETS["accurate"]] == [1.5, 1.3]
    assert all(t.shape in (None, TARGET_SHAPE) for goal in TARGETS.values() for t in goal) and TARGET_SHAPE == "1x128"


def test_faster_targets_met():
    results = evaluate_targets(report_doc(), "faster")
    assert [r.met for r in results] == [True, True, True] and all(r.shortfall == "" for r in results)
    drop = by_measure(results)["rel_drop"]
    assert drop.measured == pytest.approx(0.004) and drop.shown == "0.40%"
    assert by_measure(results)["vs_fp32"].description == "p50 speed-up over ORT fp32 at 1x128, at least 4x"
    # Exactly on the bound is met.
    assert all(r.met for r in evaluate_targets(report_doc(vs_fp32=4.0, vs_int8=2.0, change=-0.005), "faster"))


def test_faster_targets_missed_say_by_how_much():
    results = by_measure(evaluate_targets(report_doc(vs_fp32=1.73, vs_int8=1.11, change=-0.0062), "faster"))
    assert [r.met for r in results.values()] == [False, False, False]
    assert results["vs_fp32"].shown == "1.73x"
    assert results["vs_fp32"].shortfall == f"{4 / 1.73:.2f}x short" == "2.31x short"
    assert results["vs_int8"].shortfall == "1.80x short"
    assert results["rel_drop"].shown == "0.62%" and results["rel_drop"].shortfall == "0.12% over"
    assert results["rel_drop"].description == "relative drop of the dev accuracy, at most 0.5%"


def test_a_gain_is_within_the_drop_bound():
    drop = by_measure(evaluate_targets(report_doc(change=0.004), "smaller"))["rel_drop"]
    assert drop.met and drop.measured == pytest.approx(-0.004)
    assert by_measure(evaluate_targets(report_doc(change=0.0), "faster"))["rel_drop"].shown == "0.00%"  # not -0.00%


def test_smaller_targets():
    results = by_measure(evaluate_targets(report_doc(size=1.69), "smaller"))
    assert not results["size"].met and results["size"].shortfall == "8.28x short"
    assert results["size"].description == "file size, ORT fp32 over the model, at least 14x"
    assert by_measure(evaluate_targets(report_doc(size=14.5), "smaller"))["size"].met


def test_accurate_targets_are_points_over_ort_fp32_and_a_speed_up():
    results = by_measure(evaluate_targets(report_doc(model=0.3380, fp32=0.3300, vs_fp32=1.1, main="mcc"), "accurate"))
    points = results["points"]
    assert points.measured == pytest.approx(0.80) and points.shown == "+0.80 points"
    assert not points.met and points.shortfall == "0.70 points short"
    assert points.description == "dev mcc over ORT fp32, in points, at least +1.5 points"
    assert not results["vs_fp32"].met and results["vs_fp32"].shortfall == "1.18x short"
    met = by_measure(evaluate_targets(report_doc(model=0.55, fp32=0.53, vs_fp32=1.4), "accurate"))
    assert met["points"].met and met["vs_fp32"].met


def test_figures_the_run_did_not_measure_are_not_failures():
    results = by_measure(evaluate_targets(report_doc(shapes=("8x128",), change=None), "faster"))
    assert all(r.met is None and r.measured is None and r.shown == "–" for r in results.values())
    assert results["vs_fp32"].shortfall == "not measured: the bench has no 1x128"
    assert results["rel_drop"].shortfall == "not measured: ORT fp32 scored 0 accuracy"
    no_int8 = by_measure(evaluate_targets(report_doc(vs_int8=None), "faster"))
    assert no_int8["vs_int8"].met is None
    assert no_int8["vs_int8"].shortfall == "not measured: the bench has no int8 baseline"
    assert no_int8["vs_fp32"].met


def test_goal_none_has_no_targets_and_bad_names_are_refused():
    assert evaluate_targets(report_doc(), "none") == []
    with pytest.raises(ValueError, match="unknown goal 'fastest'"):
        evaluate_targets(report_doc(), "fastest")
    with pytest.raises(ValueError, match="unknown measure 'speed'"):
        Target("speed", 2.0)


def test_results_are_json_ready():
    result = evaluate_targets(report_doc(vs_fp32=1.73), "faster")[0].to_dict()
    assert result == {"measure": "vs_fp32", "threshold": 4.0, "at_most": False, "shape": "1x128",
                      "target": "p50 speed-up over ORT fp32 at 1x128, at least 4x", "measured": 1.73, "shown": "1.73x",
                      "met": False, "shortfall": "2.31x short"}
