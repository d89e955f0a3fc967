"""report.md's Targets section, and "Where the time goes" shown only when a latency target is missed."""

from onnx_approx.pipeline.report import TOP_OPS, report_markdown
from onnx_approx.pipeline.targets import evaluate_targets


def op_types(n: int, top_ms: float) -> list[dict]:
    ms = [top_ms / (i + 1) for i in range(n)]
    return [{"op": f"Op{i}", "ms": m, "share": m / sum(ms)} for i, m in enumerate(ms)]


def report_doc(goal: str, vs_fp32: float) -> dict:
    """A report doc as `build_report` makes it, for a faster or accurate run benched at 1x128."""
    latency = {"p50_ms": 10.0, "fp32_p50_ms": 10.0 * vs_fp32, "fastest_int8": "ort-int8-fused", "vs_fp32": vs_fp32,
               "vs_int8": vs_fp32 / 2}
    doc = {
        "recipe": {"name": "r", "model": "m", "goal": goal, "seed": 1, "search": {"max_rel_drop": 0.005}},
        "task": "sst2", "main_metric": "accuracy", "model_engine": "approximated", "validation": None,
        "dev": {"samples": 10, "max_seq_len": 64, "relative_change_vs_fp32": -0.01,
                "metrics": {"approximated": {"accuracy": 0.85}, "ort-fp32": {"accuracy": 0.8586}}},
        "size": {"model_bytes": 2e6, "fp32_bytes": 4e6, "fp32_over_model": 2.0},
        "latency": {"1x128": latency}, "steps": [],
        "profile": {"shape": "1x128", "threads": 2, "runs": 20, "warmup": 3, "engines": {
            "approximated": {"shape": "1x128", "runs": 20, "run_ms": 13.0, "op_types": op_types(TOP_OPS + 3, 4.0)},
            "ort-int8-fused": {"shape": "1x128", "runs": 20, "run_ms": 5.2, "op_types": op_types(2, 3.0)}}},
    }
    doc["targets"] = [r.to_dict() for r in evaluate_targets(doc, goal)]
    return doc


def section(markdown: str, heading: str) -> str:
    return markdown.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_targets_table_and_where_the_time_goes_when_a_latency_target_is_missed():
    markdown = report_markdown(report_doc("faster", vs_fp32=1.73), "| bench |", None)
    targets = section(markdown, "Targets")
    assert "| p50 speed-up over ORT fp32 at 1x128, at least 4x | 1.73x | **no** | 2.31x short |" in targets
    assert "| relative drop of the dev accuracy, at most 0.5% | 1.00% | **no** | 0.50% over |" in targets
    assert "stated on SST-2 dev" in targets
    profile = section(markdown, "Where the time goes at 1x128")
    assert "**approximated**: 13.00 ms a run" in profile and "**ort-int8-fused**: 5.20 ms a run" in profile
    rows = [line for line in profile.splitlines() if line.startswith("| Op")]
    assert len(rows) == TOP_OPS + 2  # the model's top ops, the baseline's two
    assert rows[0].startswith("| Op0 | 4.000 |")
    other = next(line for line in profile.splitlines() if line.startswith("| 3 other op types |"))
    rest = op_types(TOP_OPS + 3, 4.0)[TOP_OPS:]
    assert other == f"| 3 other op types | {sum(o['ms'] for o in rest):.3f} | {sum(o['share'] for o in rest):.1%} |"
    assert markdown.index("## Targets") < markdown.index("## Where the time goes") < markdown.index("## Benchmark")


def test_no_profile_section_when_the_latency_targets_are_met_and_no_targets_for_goal_none():
    markdown = report_markdown(report_doc("accurate", vs_fp32=1.4), "| bench |", None)
    assert "| p50 speed-up over ORT fp32 at 1x128, at least 1.3x | 1.40x | yes | – |" in section(markdown, "Targets")
    assert "mean of 3 seeds" in section(markdown, "Targets")
    assert "Where the time goes" not in markdown
    none = report_doc("none", vs_fp32=1.0) | {"profile": None}
    assert "## Targets" not in report_markdown(none, "| bench |", None)
