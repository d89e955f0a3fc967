"""What a benchmark run measured, and its three views: a Markdown table, a JSON document, a Pareto plot.

Speed-ups are p50 ratios at the same shape: `ort-fp32`'s p50 / the engine's, and the fastest int8 baseline's
(the `ort-int8*` engine with the lowest p50 at that shape) / the engine's; above 1 means faster. Sizes are
file bytes (PyTorch: its weight files), also as a fraction of `ort-fp32`'s file.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from onnx_approx.bench.baselines import FP32_BASELINE
from onnx_approx.io_utils import atomic_write_bytes, atomic_write_text
from onnx_approx.timing import Timing

RESULT_FORMAT = 1
BENCH_JSON, BENCH_MD, PARETO_PNG = "bench.json", "bench.md", "pareto.png"
INT8_PREFIX = "ort-int8"


@dataclass
class EngineResult:
    name: str
    path: str
    size_bytes: int
    baseline: bool
    timings: dict[str, Timing]  # shape label ("1x128") -> timing
    metrics: dict[str, float] | None = None


@dataclass
class BenchResult:
    shapes: list[str]
    threads: int | None
    rounds: int
    warmup: int
    pause_ms: float
    engines: list[EngineResult]
    environment: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    split: str | None = None
    main_metric: str | None = None

    def engine(self, name: str) -> EngineResult | None:
        return next((e for e in self.engines if e.name == name), None)

    def fastest_int8(self, shape: str) -> EngineResult | None:
        """The int8 baseline with the lowest p50 at `shape`, if any was measured."""
        int8 = [e for e in self.engines if e.baseline and e.name.startswith(INT8_PREFIX)]
        return min(int8, key=lambda e: e.timings[shape].p50_ms, default=None)

    def speedups(self, engine: EngineResult, shape: str) -> dict[str, float | None]:
        """p50 speed-up of `engine` at `shape` over ort-fp32 and over the fastest int8 baseline."""
        p50 = engine.timings[shape].p50_ms
        fp32, int8 = self.engine(FP32_BASELINE), self.fastest_int8(shape)
        return {"vs_fp32": fp32.timings[shape].p50_ms / p50 if fp32 else None,
                "vs_int8": int8.timings[shape].p50_ms / p50 if int8 else None}

    def size_ratio(self, engine: EngineResult) -> float | None:
        """The engine's bytes as a fraction of ort-fp32's."""
        fp32 = self.engine(FP32_BASELINE)
        return engine.size_bytes / fp32.size_bytes if fp32 else None

    def attach_metrics(self, task: str, split: str, main_metric: str, metrics: dict[str, dict[str, float]]) -> None:
        """Record each engine's metrics (engine name -> metric name -> value) on `task`'s `split`."""
        unknown = set(metrics) - {e.name for e in self.engines}
        if unknown:
            raise ValueError(f"metrics for engines that were not measured: {', '.join(sorted(unknown))}")
        self.task, self.split, self.main_metric = task, split, main_metric
        for engine in self.engines:
            engine.metrics = metrics.get(engine.name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the settings, and per engine its facts, timings and ratios."""
        engines = []
        for e in self.engines:
            timings = {shape: {**asdict(t), **{f"speedup_{k}": v for k, v in self.speedups(e, shape).items()}}
                       for shape, t in e.timings.items()}
            engines.append({"name": e.name, "baseline": e.baseline, "path": e.path, "size_bytes": e.size_bytes,
                            "size_vs_fp32": self.size_ratio(e), "timings": timings, "metrics": e.metrics})
        return {"format": RESULT_FORMAT, "shapes": self.shapes, "threads": self.threads, "rounds": self.rounds,
                "warmup": self.warmup, "pause_ms": self.pause_ms, "environment": self.environment,
                "task": self.task, "split": self.split, "main_metric": self.main_metric,
                "fastest_int8": {s: getattr(self.fastest_int8(s), "name", None) for s in self.shapes},
                "engines": engines}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """The result `to_dict` wrote (derived ratios are recomputed, not read)."""
        if data.get("format") != RESULT_FORMAT:
            raise ValueError(f"bench result: field 'format' must be {RESULT_FORMAT}, got {data.get('format')!r}")
        engines = [EngineResult(e["name"], e["path"], e["size_bytes"], e["baseline"],
                                {s: Timing(t["p50_ms"], t["p90_ms"], t["min_ms"], t["runs"])
                                 for s, t in e["timings"].items()}, e["metrics"]) for e in data["engines"]]
        keys = ("shapes", "threads", "rounds", "warmup", "pause_ms", "environment", "task", "split", "main_metric")
        return cls(engines=engines, **{k: data[k] for k in keys})

    def to_markdown(self) -> str:
        """A table: engine, size, per shape p50 / p90 and the speed-ups, the main metric when measured."""
        has_metric = any(e.metrics for e in self.engines)
        head = ["engine", "size MB", "size / fp32"]
        for shape in self.shapes:
            head += [f"{shape} p50 / p90 ms", f"{shape} × fp32", f"{shape} × int8"]
        if has_metric:
            head.append(f"{self.main_metric} ({self.task} {self.split})")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for e in self.engines:
            ratio = self.size_ratio(e)
            row = [e.name if e.baseline else f"**{e.name}**", f"{e.size_bytes / 1e6:.1f}", _num(ratio, "{:.3f}")]
            for shape in self.shapes:
                t, up = e.timings[shape], self.speedups(e, shape)
                row += [f"{t.p50_ms:.2f} / {t.p90_ms:.2f}", _num(up["vs_fp32"], "{:.2f}×"),
                        _num(up["vs_int8"], "{:.2f}×")]
            if has_metric:
                row.append(_num((e.metrics or {}).get(self.main_metric), "{:.4f}"))
            lines.append("| " + " | ".join(row) + " |")
        threads = self.threads if self.threads else "default"
        notes = [f"{threads} threads, {self.rounds} interleaved rounds after {self.warmup} warm-up calls, "
                 f"{self.pause_ms:g} ms pause before each call; speed-up = p50 of ort-fp32 (× fp32) or of the "
                 "fastest int8 baseline (× int8) / p50 of the engine; size / fp32: bytes as a fraction of ort-fp32's."]
        load = self.environment.get("load_average_1min")
        if load is not None:
            notes.append(f"Machine load (1-min average) at the end: {load:.2f} on {self.environment.get('cpu_count')} CPUs.")
        fastest = {s: self.fastest_int8(s) for s in self.shapes}
        if any(fastest.values()):
            notes.append("Fastest int8 baseline: " + ", ".join(f"{s} {e.name}" for s, e in fastest.items() if e) + ".")
        return "\n".join(lines) + "\n\n" + " ".join(notes) + "\n"

    def pareto_shape(self) -> str:
        """The shape the plot uses: 1x128 when measured, else the first one."""
        return "1x128" if "1x128" in self.shapes else self.shapes[0]

    def pareto_front(self) -> list[str]:
        """Names of the engines no other engine beats on both latency (p50 at `pareto_shape`) and main metric,
        fastest first."""
        shape = self.pareto_shape()
        points = sorted(((e.timings[shape].p50_ms, -e.metrics[self.main_metric], e.name) for e in self.engines
                         if e.metrics and self.main_metric in e.metrics))
        front, best = [], float("-inf")
        for _, neg_metric, name in points:
            if -neg_metric > best:
                front.append(name)
                best = -neg_metric
        return front

    def pareto_png(self) -> bytes | None:
        """PNG of main metric against latency with the Pareto front; None when no metric was measured."""
        if not any(e.metrics for e in self.engines):
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        shape, front = self.pareto_shape(), self.pareto_front()
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        try:
            scored = [e for e in self.engines if e.metrics and self.main_metric in e.metrics]
            for e in scored:
                x, y = e.timings[shape].p50_ms, e.metrics[self.main_metric]
                ax.scatter([x], [y], marker="s" if e.baseline else "o", s=50, zorder=3,
                           color="tab:gray" if e.baseline else "tab:red")
                ax.annotate(e.name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
            by_name = {e.name: e for e in scored}
            xs = [by_name[n].timings[shape].p50_ms for n in front]
            ys = [by_name[n].metrics[self.main_metric] for n in front]
            ax.margins(x=0.15, y=0.15)
            right = ax.get_xlim()[1]
            ax.step(xs + [right], ys + ys[-1:], where="post", color="tab:blue", linewidth=1, label="Pareto front",
                    zorder=2)
            ax.scatter(xs, ys, s=160, facecolors="none", edgecolors="tab:blue", zorder=4)
            ax.set_xlim(right=right)
            ax.set_xlabel(f"p50 latency at {shape} (ms; threads: {self.threads or 'default'})")
            ax.set_ylabel(f"{self.main_metric} ({self.task} {self.split})")
            ax.set_title("squares: baselines; circles: models; ringed: Pareto front", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(loc="best", fontsize=8)
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
        finally:
            plt.close(fig)
        return buffer.getvalue()

    def write(self, folder: str | Path) -> None:
        """bench.md, bench.json and (when metrics were measured) pareto.png into `folder`, each atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / BENCH_MD, self.to_markdown())
        atomic_write_text(folder / BENCH_JSON, json.dumps(self.to_dict(), indent=2) + "\n")
        png = self.pareto_png()
        if png is not None:
            atomic_write_bytes(folder / PARETO_PNG, png)


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)
