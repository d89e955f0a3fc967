"""A recipe: one TOML file saying what to approximate (model, task), for which goal, within which bound and
on which budgets. `onnx-approx run RECIPE` executes it (onnx_approx.pipeline).

Layout (every section and key optional except model, task and goal; absent budgets take the defaults of
the config classes named, so a recipe states only what it changes):

    model = "minilm-l6"          # alias, model folder or hub id
    task = "sst2"                # registered task, or "table" with [data] files
    goal = "faster"              # faster | smaller | accurate | none (conventional baseline only)
    seed = 42                    # fine-tuning, validation split and recovery
    out = "runs/NAME"            # default: runs/<recipe file name>
    [data]       data_dir; table tasks: train_file, dev_file, val_file, text_column, text_pair_column,
                 label_column, regression
    [bounds]     max_rel_drop, max_loss_increase                 (SearchConfig)
    [finetune]   epochs, lr, batch_size, max_seq_len, ...        (TrainConfig)
    [analysis]   val_fraction, val_samples, exact_fraction, ...  (AnalysisConfig; also the split held out of
                                                                  fine-tuning)
    [search]     patience, top_k, seq_len, ..., rounds           (SearchConfig; rounds of search + recovery)
    [recovery]   epochs, lr, max_train_samples, start_from, ...  (RecoveryConfig)
    [bench]      shapes, threads, rounds, baselines, calibration_samples   (BenchConfig)

Relative paths are read from the working directory, as on the command line.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_approx.bench import BASELINES, parse_shape
from onnx_approx.recovery import RecoveryConfig
from onnx_approx.search import GOALS, SearchConfig
from onnx_approx.significance.analysis import AnalysisConfig
from onnx_approx.train_config import TrainConfig

log = logging.getLogger(__name__)

RECIPE_GOALS = (*GOALS, "none")
DEFAULT_RUNS_DIR = Path("runs")


class RecipeError(ValueError):
    """A recipe that cannot be run; the message names the file and the field."""


@dataclass
class DataConfig:
    """Where the task's examples come from: the data folder of registered tasks, or a table task's files."""

    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    val_file: str | None = None
    text_column: str = "sentence"
    text_pair_column: str | None = None
    label_column: str = "label"
    regression: bool = False


@dataclass
class BenchConfig:
    """The side-by-side benchmark (onnx_approx.bench): input shapes ("BATCHxSEQ"), threads (None: all cores),
    timed rounds, the baselines measured beside the model (None: all; ort-fp32 always, the ratios' reference)
    and the training examples calibrating the static int8 baseline."""

    shapes: tuple[str, ...] = ("1x128", "8x128", "1x512")
    threads: int | None = None
    rounds: int = 60
    baselines: tuple[str, ...] | None = None
    calibration_samples: int = 100

    def __post_init__(self) -> None:
        for shape in self.shapes:
            parse_shape(shape)
        unknown = [name for name in self.baselines or () if name not in BASELINES]
        if unknown:
            raise ValueError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
        if self.rounds < 1 or self.calibration_samples < 1:
            raise ValueError(f"rounds and calibration_samples must be >= 1, "
                             f"got {self.rounds} and {self.calibration_samples}")


@dataclass
class Recipe:
    """A parsed, validated recipe; `name` is the file name without .toml."""

    name: str
    source: str  # the file it was read from (for messages)
    model: str
    task: str
    goal: str
    seed: int
    out: Path
    data: DataConfig
    finetune: TrainConfig
    analysis: AnalysisConfig
    search: SearchConfig | None  # None for goal "none"
    rounds: int
    recovery: RecoveryConfig
    bench: BenchConfig

    @property
    def approximates(self) -> bool:
        return self.goal != "none"

    def to_dict(self) -> dict[str, Any]:
        """Everything the recipe decides, JSON-ready (the report records it)."""
        data = {k: getattr(self, k) for k in ("name", "model", "task", "goal", "seed")}
        data["out"] = str(self.out)
        for section in ("data", "finetune", "analysis", "search", "recovery", "bench"):
            value = getattr(self, section)
            data[section] = None if value is None else dataclasses.asdict(value)
        data["rounds"] = self.rounds
        return data


# Section -> (config class, keys the recipe sets elsewhere and so are not accepted in the section).
_SECTIONS: dict[str, tuple[type, tuple[str, ...]]] = {
    "data": (DataConfig, ()),
    "finetune": (TrainConfig, ("seed",)),
    "analysis": (AnalysisConfig, ("seed",)),
    "search": (SearchConfig, ("goal", "max_rel_drop", "max_loss_increase")),
    "recovery": (RecoveryConfig, ("seed",)),
    "bench": (BenchConfig, ()),
}
_BOUND_KEYS = ("max_rel_drop", "max_loss_increase")
_TOP_KEYS = {"model": str, "task": str, "goal": str, "seed": int, "out": str}
_REQUIRED = ("model", "task", "goal")


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None
    return parse_recipe(raw, name=path.stem, source=str(path))


def parse_recipe(raw: dict[str, Any], name: str, source: str = "recipe") -> Recipe:
    """A Recipe from the parsed TOML table `raw`."""
    known = {*_TOP_KEYS, "bounds", *_SECTIONS}
    for key in raw:
        if key not in known:
            raise RecipeError(f"{source}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    for key in _REQUIRED:
        if key not in raw:
            raise RecipeError(f"{source}: missing required key {key!r}")
    top = {key: _checked(raw[key], kind, f"{source}: {key}") for key, kind in _TOP_KEYS.items() if key in raw}
    goal = top["goal"]
    if goal not in RECIPE_GOALS:
        raise RecipeError(f"{source}: goal must be one of {', '.join(RECIPE_GOALS)}, got {goal!r}")
    seed = top.get("seed", TrainConfig().seed)
    sections = {name_: _section(raw, name_, source) for name_ in _SECTIONS}
    bounds = _table(raw, "bounds", source)
    for key in bounds:
        if key not in _BOUND_KEYS:
            raise RecipeError(f"{source}: unknown key 'bounds.{key}' (known: {', '.join(_BOUND_KEYS)})")
    hints = typing.get_type_hints(SearchConfig)
    bounds = {k: _checked(v, hints[k], f"{source}: bounds.{k}") for k, v in bounds.items()}
    rounds = _checked(sections["search"].pop("rounds", 1), int, f"{source}: search.rounds")

    def build(section: str, cls: type, **fixed: Any) -> Any:
        try:
            return cls(**sections[section], **fixed)
        except ValueError as exc:
            where = "[bounds]/[search]" if section == "search" else f"[{section}]"
            raise RecipeError(f"{source}: {where} {exc}") from None

    search = build("search", SearchConfig, goal=goal, **bounds) if goal != "none" else None
    if goal == "none" and (bounds or sections["search"] or sections["recovery"]):
        log.warning("%s: goal 'none' runs no search nor recovery; [bounds], [search], [recovery] are ignored", source)
    recovery = build("recovery", RecoveryConfig, seed=seed)
    if rounds < 1 or (rounds > 1 and recovery.epochs <= 0):
        raise RecipeError(f"{source}: search.rounds must be 1, or more with recovery.epochs > 0; got {rounds}")
    task = top["task"]
    data = build("data", DataConfig)
    if (task == "table") != (data.train_file is not None):
        raise RecipeError(f"{source}: data.train_file is required for task 'table' and only there")
    return Recipe(
        name=name, source=source, model=top["model"], task=task, goal=goal, seed=seed,
        out=Path(top["out"]) if "out" in top else DEFAULT_RUNS_DIR / name,
        data=data, finetune=build("finetune", TrainConfig, seed=seed),
        analysis=build("analysis", AnalysisConfig, seed=seed), search=search, rounds=rounds,
        recovery=recovery, bench=build("bench", BenchConfig),
    )


def _table(raw: dict[str, Any], section: str, source: str) -> dict[str, Any]:
    value = raw.get(section, {})
    if not isinstance(value, dict):
        raise RecipeError(f"{source}: {section} must be a table ([{section}]), got {type(value).__name__}")
    return value


def _section(raw: dict[str, Any], section: str, source: str) -> dict[str, Any]:
    """The keys of `[section]`, checked against the fields (and their types) of its config class."""
    cls, elsewhere = _SECTIONS[section]
    hints = typing.get_type_hints(cls)
    allowed = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in elsewhere}
    if section == "search":
        allowed["rounds"] = int
    values = {}
    for key, value in _table(raw, section, source).items():
        where = f"{source}: {section}.{key}"
        if key not in allowed:
            hint = "; set it as top-level 'seed'" if key == "seed" else (
                "; it belongs in [bounds]" if key in _BOUND_KEYS else "")
            raise RecipeError(f"{where}: unknown key (known: {', '.join(sorted(allowed))}){hint}")
        values[key] = _checked(value, allowed[key], where)
    return values


def _checked(value: Any, hint: Any, where: str) -> Any:
    """`value` if it fits the type `hint` (int, float, str, bool, X | None, tuple[X, ...]); ints pass as
    floats and lists as tuples. TOML has no null, so `X | None` means X."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _checked(value, inner[0], where)
    if origin is tuple:
        if not isinstance(value, list):
            raise RecipeError(f"{where} must be a list, got {value!r}")
        return tuple(_checked(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and isinstance(value, hint) and (hint is bool or not isinstance(value, bool)):
        return value
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    raise RecipeError(f"{where} must be {names.get(hint, hint)}, got {value!r}")
