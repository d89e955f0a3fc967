"""The goals' targets, declared once (TARGETS), and their check against a run's report.

They are the project's claims, as its issue "End-to-end recipes, side-by-side benchmark and the results
table" states them: "faster mode >= 4x vs ORT fp32 and >= 2x vs ORT int8 at 1x128 with <= 0.5 % relative
drop on SST-2 dev; smaller mode >= 14x smaller file at <= 0.5 % relative drop; accurate mode >= +1.5 points
over conventional fine-tuning on CoLA (MCC) and RTE (accuracy), mean of 3 seeds, while >= 1.3x faster."

One run checks what one run can: its model against its own fine-tuned model in ORT fp32 (SCOPE says what
is left to several runs). A target whose figure the run did not measure (a bench without 1x128, no int8
baseline) is "not measured", not missed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from onnx_approx.bench import FP32_BASELINE

TARGET_SHAPE = "1x128"  # the latency targets' input shape (batch x sequence)
MAX_REL_DROP = 0.005  # faster and smaller: at most 0.5 % relative drop of the dev main metric

# measure -> (what it is, unit: "ratio" shown as 1.73x, "percent" as 0.62%, "points" as +1.50 points)
MEASURES: dict[str, tuple[str, str]] = {
    "vs_fp32": ("p50 speed-up over ORT fp32", "ratio"),
    "vs_int8": ("p50 speed-up over the fastest ORT int8", "ratio"),
    "size": ("file size, ORT fp32 over the model", "ratio"),
    "rel_drop": ("relative drop of the dev {metric}", "percent"),
    "points": ("dev {metric} over ORT fp32, in points", "points"),
}


@dataclass(frozen=True)
class Target:
    """`measure` (a key of MEASURES) at least `threshold` (at most, if `at_most`), at `shape` for latency."""

    measure: str
    threshold: float
    at_most: bool = False
    shape: str | None = None

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ValueError(f"target: unknown measure {self.measure!r}; expected one of {', '.join(MEASURES)}")

    @property
    def unit(self) -> str:
        return MEASURES[self.measure][1]

    def describe(self, metric: str) -> str:
        """E.g. "p50 speed-up over ORT fp32 at 1x128, at least 4x"."""
        where = f" at {self.shape}" if self.shape else ""
        bound = "at most" if self.at_most else "at least"
        return f"{MEASURES[self.measure][0].format(metric=metric)}{where}, {bound} {_threshold(self)}"


TARGETS: dict[str, tuple[Target, ...]] = {
    "none": (),
    "faster": (Target("vs_fp32", 4.0, shape=TARGET_SHAPE), Target("vs_int8", 2.0, shape=TARGET_SHAPE),
               Target("rel_drop", MAX_REL_DROP, at_most=True)),
    "smaller": (Target("size", 14.0), Target("rel_drop", MAX_REL_DROP, at_most=True)),
    "accurate": (Target("points", 1.5), Target("vs_fp32", 1.3, shape=TARGET_SHAPE)),
}

# What a single run cannot check, said beside its targets.
SCOPE: dict[str, str] = {
    "faster": "The claim is stated on SST-2 dev; other tasks are checked against the same figures.",
    "smaller": "",
    "accurate": "The claim is the mean of 3 seeds on CoLA (MCC) and RTE (accuracy) against conventional "
                "fine-tuning given the same total training. This run is one seed, compared with its own "
                "fine-tuned model in ORT fp32 (no recovery epochs); the mean of seeds and the equal-training "
                "baseline come from several runs, outside this report.",
}


@dataclass(frozen=True)
class TargetResult:
    """One target checked: the figure (None: not measured), whether it is met (None: not measured), and
    how far it is from the target when it is not ("" when met)."""

    target: Target
    description: str
    measured: float | None
    met: bool | None
    shortfall: str

    @property
    def shown(self) -> str:
        """The figure as the report prints it: 1.73x, 0.62%, +1.50 points; – when not measured."""
        if self.measured is None:
            return "–"
        unit, value = self.target.unit, self.measured
        return {"ratio": f"{value:.2f}x", "percent": f"{value:.2%}", "points": f"{value:+.2f} points"}[unit]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.target), "target": self.description, "measured": self.measured, "shown": self.shown,
                "met": self.met, "shortfall": self.shortfall}


def evaluate_targets(doc: dict[str, Any], goal: str) -> list[TargetResult]:
    """Check `goal`'s targets against a report doc (`onnx_approx.pipeline.report.build_report`'s dict)."""
    if goal not in TARGETS:
        raise ValueError(f"targets: unknown goal {goal!r}; expected one of {', '.join(TARGETS)}")
    results = []
    for target in TARGETS[goal]:
        value, missing = _measured(doc, target)
        description = target.describe(doc["main_metric"])
        if value is None:
            results.append(TargetResult(target, description, None, None, f"not measured: {missing}"))
            continue
        met = value <= target.threshold if target.at_most else value >= target.threshold
        results.append(TargetResult(target, description, value, met, "" if met else _shortfall(target, value)))
    return results


def _measured(doc: dict[str, Any], target: Target) -> tuple[float | None, str]:
    """The report's figure for `target`, or None and why it is missing."""
    if target.measure in ("vs_fp32", "vs_int8"):
        latency = doc["latency"].get(target.shape)
        if latency is None:
            return None, f"the bench has no {target.shape}"
        return latency[target.measure], "the bench has no int8 baseline"
    if target.measure == "size":
        return doc["size"]["fp32_over_model"], ""
    if target.measure == "rel_drop":
        change = doc["dev"]["relative_change_vs_fp32"]
        return (None if change is None else 0.0 - change), f"ORT fp32 scored 0 {doc['main_metric']}"  # no -0.0
    metrics, main = doc["dev"]["metrics"], doc["main_metric"]
    return 100 * (metrics[doc["model_engine"]][main] - metrics[FP32_BASELINE][main]), ""


def _threshold(target: Target) -> str:
    t = target.threshold
    return {"ratio": f"{t:g}x", "percent": f"{t * 100:g}%", "points": f"{t:+g} points"}[target.unit]


def _shortfall(target: Target, value: float) -> str:
    """How far a missed target is: a ratio as the factor still needed, the others as the gap."""
    side = "over" if target.at_most else "short"
    if target.unit == "ratio":
        factor = value / target.threshold if target.at_most else target.threshold / value
        return f"{factor:.2f}x {side}"
    gap = abs(value - target.threshold)
    return f"{gap:.2%} {side}" if target.unit == "percent" else f"{gap:.2f} points {side}"
