"""The run's deliverables: the model folder's files, the significance heatmap, the Pareto plot, report.json
and report.md.

report.json holds every figure: the recipe, the dev metrics of each engine (ONNX Runtime; PyTorch for the
`torch` baseline) and the model's relative change against ORT fp32, sizes, the benchmark with the speed-ups
against ORT fp32 and the fastest int8 baseline, the goal's targets (met, or by how much they are missed: see
targets.py), where the time goes (the profile step's ms per op type), what the plan changed (summary; plan.json
has every layer) and its validation metrics, and the step timings. report.md shows them for a person (the
profile when a latency target is missed) and ends with the approximation's own report (what changed where).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from onnx_approx.approximation import PLAN_FILE
from onnx_approx.approximation import REPORT_FILE as APPROXIMATION_REPORT
from onnx_approx.bench import BENCH_JSON, BENCH_MD, FP32_BASELINE, PARETO_PNG, BenchResult
from onnx_approx.finetune import METRICS_FILE
from onnx_approx.io_utils import atomic_write_bytes, atomic_write_text, read_json
from onnx_approx.pipeline.bench_step import PROFILE_FILE, model_engine
from onnx_approx.pipeline.runner import MARKER_FILE, StepRecord
from onnx_approx.pipeline.steps import EVALUATION_FILE, RunContext
from onnx_approx.pipeline.targets import SCOPE, evaluate_targets
from onnx_approx.plan import Plan
from onnx_approx.significance.report import HEATMAP_FILE

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
TOP_OPS = 8  # op types listed one by one in "Where the time goes"; the rest share one row


def relative_change(new: float, old: float) -> float | None:
    return None if old == 0 else (new - old) / abs(old)


def build_report(ctx: RunContext, records: dict[str, StepRecord], package: str) -> dict[str, Any]:
    """Every figure of the run, JSON-ready."""
    evaluation = read_json(records["evaluate"].folder / EVALUATION_FILE)
    main, model = evaluation["main_metric"], model_engine(ctx)
    bench_doc = read_json(records["bench"].folder / BENCH_JSON)
    bench = BenchResult.from_dict(bench_doc)
    engine, fp32 = bench.engine(model), bench.engine(FP32_BASELINE)
    dev = evaluation["metrics"]
    doc: dict[str, Any] = {
        "recipe": ctx.recipe.to_dict(), "version": package, "task": evaluation["task"], "main_metric": main,
        "model_engine": model,
        "validation": read_json(records["finetune"].folder / METRICS_FILE)["train"].get("held_out"),
        "dev": {"samples": evaluation["samples"], "max_seq_len": evaluation["max_seq_len"], "metrics": dev,
                "relative_change_vs_fp32": relative_change(dev[model][main], dev[FP32_BASELINE][main])},
        "size": {"model_bytes": engine.size_bytes, "fp32_bytes": fp32.size_bytes,
                 "fp32_over_model": fp32.size_bytes / engine.size_bytes},
        "latency": {shape: {"p50_ms": engine.timings[shape].p50_ms, "fp32_p50_ms": fp32.timings[shape].p50_ms,
                            "fastest_int8": bench_doc["fastest_int8"][shape], **bench.speedups(engine, shape)}
                    for shape in bench.shapes},
        "bench": bench_doc,
    }
    doc["targets"] = [r.to_dict() for r in evaluate_targets(doc, ctx.recipe.goal)]
    doc["profile"] = read_json(records["profile"].folder / PROFILE_FILE) if "profile" in records else None
    if ctx.recipe.approximates:
        plan = Plan.load(records["approximate"].folder / PLAN_FILE)
        doc["plan"] = plan.summary()
    doc["steps"] = [{"name": r.name, "seconds": r.marker.get("seconds"), "reused": r.reused, "folder": str(r.folder)}
                    for r in records.values()]
    return doc


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def report_markdown(doc: dict[str, Any], bench_md: str, approximation_md: str | None) -> str:
    recipe, main, dev, model = doc["recipe"], doc["main_metric"], doc["dev"], doc["model_engine"]
    search = recipe["search"] or {}
    bound = f", max relative drop {search['max_rel_drop']:g}" if recipe["goal"] in ("faster", "smaller") else ""
    change = dev["relative_change_vs_fp32"]
    lines = [
        f"# {recipe['name']}: {recipe['model']} on {doc['task']}, goal {recipe['goal']}{bound}", "",
        f"Seed {recipe['seed']}. Validation split (held out of fine-tuning): {doc['validation'] or 'none'}. "
        f"Dev: {dev['samples']} examples, inputs up to {dev['max_seq_len']} tokens.", "",
        f"| | {model} | {FP32_BASELINE} | {model} against {FP32_BASELINE} |", "|---|---:|---:|---|",
        f"| dev {main} | {dev['metrics'][model][main]:.4f} | {dev['metrics'][FP32_BASELINE][main]:.4f} | "
        f"{'–' if change is None else f'{change:+.2%}'} |",
        f"| file | {doc['size']['model_bytes'] / 1e6:.2f} MB | {doc['size']['fp32_bytes'] / 1e6:.2f} MB | "
        f"{_ratio(doc['size']['fp32_over_model'])} smaller |",
    ]
    for shape, t in doc["latency"].items():
        int8 = f" ({_ratio(t['vs_int8'])} against {t['fastest_int8']}, the fastest int8)" if t["fastest_int8"] else ""
        lines.append(f"| p50 at {shape} | {t['p50_ms']:.2f} ms | {t['fp32_p50_ms']:.2f} ms | "
                     f"{_ratio(t['vs_fp32'])} faster{int8} |")
    lines += _targets_section(doc) + _profile_section(doc)
    lines += ["", "## Benchmark", "", bench_md.strip(), "", f"![accuracy against latency]({PARETO_PNG})", "",
              "## Steps", "", "| step | seconds | this run |", "|---|---:|---|"]
    lines += [f"| {s['name']} | {s['seconds']:.0f} | {'reused' if s['reused'] else 'ran'} |" for s in doc["steps"]]
    if approximation_md:
        lines += ["", _demoted(approximation_md).strip()]
    return "\n".join(lines) + "\n"


def _targets_section(doc: dict[str, Any]) -> list[str]:
    """The goal's targets: measured, met or not, and by how much when not (none for goal none)."""
    if not doc["targets"]:
        return []
    goal = doc["recipe"]["goal"]
    lines = ["", "## Targets", "", f"The project's claims for goal {goal}, checked on this run. {SCOPE[goal]}".strip(),
             "", "| target | measured | met | shortfall |", "|---|---:|---|---|"]
    for t in doc["targets"]:
        met = "–" if t["met"] is None else "yes" if t["met"] else "**no**"
        lines.append(f"| {t['target']} | {t['shown']} | {met} | {t['shortfall'] or '–'} |")
    return lines


def _profile_section(doc: dict[str, Any]) -> list[str]:
    """Where the time goes, per profiled engine: the top op types by kernel time; only when a latency target
    is missed."""
    profile = doc["profile"]
    if profile is None or not any(t["met"] is False and t["shape"] for t in doc["targets"]):
        return []
    threads = profile["threads"] or "all"
    lines = ["", f"## Where the time goes at {profile['shape']}", "",
             f"ONNX Runtime's profiler, {profile['runs']} runs after {profile['warmup']} warm-up runs, {threads} "
             f"threads: kernel time per run by op type (the rest of a run is the runtime's own work)."]
    for name, engine in profile["engines"].items():
        ops = engine["op_types"]
        kernels = sum(o["ms"] for o in ops)
        lines += ["", f"**{name}**: {engine['run_ms']:.2f} ms a run, {kernels:.2f} ms of it in kernels.", "",
                  "| op type | ms | share |", "|---|---:|---:|"]
        lines += [f"| {o['op']} | {o['ms']:.3f} | {o['share']:.1%} |" for o in ops[:TOP_OPS]]
        rest = ops[TOP_OPS:]
        if rest:
            lines.append(f"| {len(rest)} other op types | {sum(o['ms'] for o in rest):.3f} | "
                         f"{sum(o['share'] for o in rest):.1%} |")
    return lines


def _demoted(markdown: str) -> str:
    """Headings one level lower, so an included report nests under this one."""
    return re.sub(r"^(#+) ", r"#\1 ", markdown, flags=re.MULTILINE)


def model_folder(ctx: RunContext) -> Path:
    """The folder of the run's model: the passes' output, or (goal none) the ORT fp32 baseline."""
    return ctx.folders["passes"] if ctx.recipe.approximates else ctx.folders["baselines"] / FP32_BASELINE


def publish(ctx: RunContext, records: dict[str, StepRecord], out: Path, package: str) -> Path:
    """Write the deliverables into `out` (each file atomically, report.json last); returns report.md's path."""
    out = Path(out)
    previous = read_json(out / REPORT_JSON).get("files", []) if (out / REPORT_JSON).is_file() else []
    folder = model_folder(ctx)
    sources = {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER_FILE}
    extras = [records["bench"].folder / PARETO_PNG]
    if ctx.recipe.approximates:
        extras.append(records["analyze"].folder / HEATMAP_FILE)
    sources |= {p.name: p for p in extras if p.is_file()}
    for name, path in sources.items():
        atomic_write_bytes(out / name, path.read_bytes())
    doc = build_report(ctx, records, package)
    approximation_md = None
    if ctx.recipe.approximates:
        approximation_md = (records["approximate"].folder / APPROXIMATION_REPORT).read_text()
    bench_md = (records["bench"].folder / BENCH_MD).read_text()
    atomic_write_text(out / REPORT_MD, report_markdown(doc, bench_md, approximation_md))
    doc["files"] = sorted([*sources, REPORT_MD, REPORT_JSON])
    for stale in set(previous) - set(doc["files"]):  # written by an earlier run of another goal
        if Path(stale).name == stale:
            (out / stale).unlink(missing_ok=True)
    atomic_write_text(out / REPORT_JSON, json.dumps(doc, indent=2) + "\n")
    return out / REPORT_MD
