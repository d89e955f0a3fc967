"""Goal-driven approximation search: which blocks, heads, neuron groups, matrix precisions and top-K attention
to apply, measured exactly on the validation split, one candidate at a time, kept or undone.

Goals:
  accurate  The authors' rule: a change is kept only if the validation loss falls below the best so far and
            more than half of the samples have a loss no higher than the original model's. Order: top-K
            attention per layer (if K values are given); then layers last to first: the FFN block, else (if
            its loss stayed under 1.1 x best) each neuron group; the attention block, else each head; then
            int8 per matrix.
  faster    Spend the allowed drop of the validation main metric (--max-rel-drop, relative) on the least
  smaller   significant components per unit saved (MACs per token at --seq-len for faster, bytes for
            smaller), in phases: whole blocks, then heads and neuron groups (a phase stops after --patience
            rejections in a row), then precision (faster: int8, counted at the measured int8 MatMul
            speed-up, a layer's Q, K and V as one unit since ORT runs its fused Attention in int8 only when
            all three are; smaller: int4, else int8, per matrix), tried by bisection: all units at once, else
            each half, down to single units. Ranking: exact loss changes from an analysis where it covers
            the phase (a Q/K/V unit: the sum of its matrices'), else first-order scores measured afresh at
            the current plan.
            smaller first tries the tables outside the encoder, most bytes saved first, each int4 else int8:
            the word embeddings (most of a small model's file), the position embeddings, the task head's
            hidden x hidden projection (where the head has one); tried last, they found the budget spent
            (SST-2: the word table's int4 rejected after the encoder took the whole 0.5 %).
            smaller with prune_vocab also keeps only the vocabulary of the training examples (first, no
            trial: validation comes from training data, so it cannot see the cost; dev tokens outside it
            read as [UNK], which cost 0.8 % relative accuracy on SST-2 dev: hence opt-in).

Every trial reruns only the layers at and above the change (cached layer inputs; an embedding table from
layer 0, the head's projection from the last layer). After each trial the
state (plan, trials, phase rankings) is written atomically, so a killed search resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from onnx_approx.approximate import PlannedModel
from onnx_approx.architectures import MATRIX_ROLES, spec_for
from onnx_approx.costs import FUSED_QKV_ROLES, effective_macs_per_token, encoder_bytes, macs_per_token, table_bytes
from onnx_approx.io_utils import atomic_write_text, read_json
from onnx_approx.plan import Plan
from onnx_approx.data.tasks import ACCURACY
from onnx_approx.significance.ablation import GiveUp, LayerInputCache, Measurement
from onnx_approx.significance.candidates import Bundle, Candidate, single_candidates
from onnx_approx.significance.gates import GateLayout
from onnx_approx.significance.precision import table_shapes
from onnx_approx.significance.taylor import FirstOrderScores, first_order_scores
from onnx_approx.significance.validation import ValidationSet

log = logging.getLogger(__name__)

GOALS = ("faster", "smaller", "accurate")
STATE_FORMAT = 1
ACCURATE_GROUP_SLACK = 1.1  # accurate: try a block's groups/heads only if removing it kept loss < 1.1 x best
Unit = Candidate | Bundle  # what a trial changes: one edit, or several tried at once


class SearchStateMismatch(ValueError):
    """A checkpoint exists for other settings, so resuming from it would mix two searches."""


@dataclass
class SearchConfig:
    goal: str
    max_rel_drop: float = 0.005  # faster/smaller: allowed relative drop of the validation main metric
    max_loss_increase: float | None = None  # faster/smaller: optional bound on the relative loss rise too
    patience: int = 10  # faster/smaller: a phase ends after this many rejections in a row
    top_k: tuple[int, ...] = ()  # K values of top-K attention to try per layer (none: skip that phase)
    seq_len: int = 128  # sequence length the "faster" MACs are counted at
    early_reject: bool = True  # stop measuring a trial once it can no longer be accepted (same decisions)
    prune_vocab: bool = False  # smaller: keep only the vocabulary of the training examples (opt-in)

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise ValueError(f"goal must be one of {', '.join(GOALS)}, got {self.goal!r}")
        if not 0.0 <= self.max_rel_drop < 1.0:
            raise ValueError(f"--max-rel-drop must be in [0, 1), got {self.max_rel_drop}")
        if any(k < 1 for k in self.top_k):
            raise ValueError(f"top-K values must be >= 1, got {list(self.top_k)}")
        self.top_k = tuple(sorted(set(self.top_k)))


@dataclass
class Trial:
    """One measured candidate. loss/metric/no_worse_fraction are None when the run was cut short because the
    candidate could no longer be accepted; best_before is the best validation loss when it was tried."""

    candidate: str
    phase: str
    accepted: bool
    loss: float | None
    metric: float | None
    no_worse_fraction: float | None
    saving: float
    best_before: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trial":
        return cls(**data)


@dataclass
class SearchState:
    """What a resumed search needs: settings it was started with, the plan so far, trials, phase rankings."""

    settings: dict[str, Any]
    plan: dict[str, Any]
    best_loss: float
    trials: list[Trial] = field(default_factory=list)
    rankings: dict[str, list[str]] = field(default_factory=dict)
    finished: bool = False
    seconds: float = 0.0  # search time up to the last checkpoint, over every run that resumed it

    def save(self, path: Path) -> None:
        data = {"format": STATE_FORMAT, **asdict(self)}
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> "SearchState":
        data = read_json(path)
        if data.pop("format", None) != STATE_FORMAT:
            raise ValueError(f"{path}: not a search state of format {STATE_FORMAT}")
        data["trials"] = [Trial.from_dict(t) for t in data["trials"]]
        return cls(**data)


class Search:
    """One search over `model` (full-size; left unchanged at the end) on `valset`; see the module doc.

    `start_plan` continues from a plan already applied (e.g. after a round of recovery); `reference` is the
    measurement the rules compare against (the original model's), by default the model at `start_plan`.
    `vocabulary`: the `embeddings` fields keeping the training examples' tokens
    (`onnx_approx.vocabulary.vocabulary_fields`), which the smaller goal applies.
    """

    def __init__(self, model: nn.Module, valset: ValidationSet, layout: GateLayout, config: SearchConfig,
                 state_path: Path, settings: dict[str, Any], analysis: dict[str, Any] | None = None,
                 progress: bool = True, start_plan: Plan | None = None, reference: Measurement | None = None,
                 vocabulary: dict[str, Any] | None = None):
        self.model, self.valset, self.layout, self.config = model, valset, layout, config
        self.vocabulary = vocabulary
        self.state_path, self.analysis, self.progress = Path(state_path), analysis, progress
        spec = spec_for(model.config.model_type)
        self.identity = Plan.identity(spec.model_type, spec.dims(model.config), goal=config.goal)
        self.tables = table_shapes(model)
        start_plan = start_plan or self.identity
        self.planned = PlannedModel(model, layout)
        self.planned.apply(start_plan)
        self.cache = LayerInputCache(model, valset, progress=progress)
        self.reference = reference or self.cache.baseline
        self.reference_metric = self._metric(self.reference)
        settings = {**settings, "search": asdict(config), "group_size": layout.group_size,
                    "validation_samples": len(valset), "start_plan": start_plan.to_dict()}
        self.state = self._resume_or_start(json.loads(json.dumps(settings)), start_plan)
        self.plan = Plan.from_dict(self.state.plan, source=str(self.state_path))
        self.current = self.cache.baseline
        if self.plan != start_plan:
            self.planned.apply(self.plan)
            self.current = self.cache.measure(0, record=True)
            self.cache.commit(self.current)
        self._done = {t.candidate: t for t in self.state.trials}
        self._scores: FirstOrderScores | None = None
        self._since = time.perf_counter()  # time not yet added to state.seconds

    # -- state ------------------------------------------------------------------------------------
    def _resume_or_start(self, settings: dict[str, Any], start_plan: Plan) -> SearchState:
        start_loss = self.cache.baseline.loss
        settings["start_loss"] = start_loss
        if not self.state_path.is_file():
            return SearchState(settings=settings, plan=start_plan.to_dict(), best_loss=min(start_loss, self.reference.loss))
        state = SearchState.load(self.state_path)
        changed = sorted(k for k in settings.keys() | state.settings.keys()
                         if k != "start_loss" and settings.get(k) != state.settings.get(k))
        saved_loss = state.settings.get("start_loss", float("nan"))
        if not abs(saved_loss - start_loss) <= 1e-5 * max(1.0, abs(start_loss)):
            changed.append(f"validation loss at the start {saved_loss:.6f} -> {start_loss:.6f}")
        if changed:
            raise SearchStateMismatch(
                f"{self.state_path} holds a search with other settings ({', '.join(changed)}); "
                "use another --out, or --overwrite to start afresh")
        log.info("resuming search: %d trials done", len(state.trials))
        return state

    def _checkpoint(self) -> None:
        now = time.perf_counter()
        self.state.seconds += now - self._since
        self._since = now
        self.state.plan = self.plan.to_dict()
        self.state.save(self.state_path)

    # -- measuring and deciding ---------------------------------------------------------------------
    def _metric(self, measurement: Measurement) -> float:
        return self.valset.metrics(measurement.outputs)[self.valset.task.main_metric]

    def _metric_floor(self) -> float:
        return self.reference_metric - abs(self.reference_metric) * self.config.max_rel_drop

    def _within_budget(self, measurement: Measurement) -> bool:
        if self._metric(measurement) < self._metric_floor() - 1e-12:
            return False
        bound = self.config.max_loss_increase
        return bound is None or measurement.loss <= self.reference.loss * (1 + bound)

    def _improves(self, measurement: Measurement) -> bool:
        no_worse = float(np.mean(measurement.losses <= self.reference.losses))
        return measurement.loss < self.state.best_loss and no_worse > 0.5

    def try_candidate(self, candidate: Unit, phase: str, bar: tqdm | None = None) -> Trial | None:
        """Measure `candidate` on top of the current plan; keep it if the goal's rule accepts it.

        Returns None when the candidate no longer applies; a finished trial from the state is not rerun.
        """
        if candidate.name in self._done:
            return self._done[candidate.name]
        if not candidate.applies_to(self.plan, self.layout):
            return None
        if bar is not None:
            bar.set_description(f"{phase}: {candidate.name}")
        saving = self.saving(self.plan, candidate)
        new_plan = candidate.apply(self.plan, self.layout)
        self.planned.apply(new_plan)
        give_up = self._give_up(candidate) if self.config.early_reject else None
        measurement = self.cache.measure(candidate.layer, record=True, give_up=give_up)
        if not measurement.complete:
            accepted = False
        elif self.config.goal == "accurate":
            accepted = self._improves(measurement)
        else:
            accepted = self._within_budget(measurement)
        best_before = self.state.best_loss
        if accepted:
            self.cache.commit(measurement)
            self.plan, self.current = new_plan, measurement
            self.state.best_loss = min(self.state.best_loss, measurement.loss)
        else:
            self.planned.apply(self.plan)
        if measurement.complete:
            trial = Trial(candidate.name, phase, accepted, measurement.loss, self._metric(measurement),
                          float(np.mean(measurement.losses <= self.reference.losses)), saving, best_before)
        else:
            trial = Trial(candidate.name, phase, False, None, None, None, saving, best_before)
        self.state.trials.append(trial)
        self._done[candidate.name] = trial
        self._checkpoint()
        log.debug("%s %s: %s", phase, candidate.name, trial)
        return trial

    def _give_up(self, candidate: Unit) -> GiveUp | None:
        """A per-batch test that turns True once the goal's rule cannot accept `candidate` whatever the
        remaining batches hold (losses are >= 0, errors only add up); decisions stay those of a full run."""
        n = len(self.valset)
        margin = 1 + 1e-6  # float32 means vs float64 running sums: give up only when clearly past the line
        totals = {"loss": 0.0, "worse": 0, "wrong": 0}
        if self.config.goal == "accurate":
            block = candidate.kind in ("attention", "ffn")  # its loss decides whether units are tried
            loss_ceiling = self.state.best_loss * (ACCURATE_GROUP_SLACK if block else 1.0)
            max_worse = None if block else n / 2
            max_wrong = None
        else:
            bound = self.config.max_loss_increase
            loss_ceiling = None if bound is None else self.reference.loss * (1 + bound)
            max_worse = None
            counts_errors = self.valset.task.kind == "classification" and self.valset.task.main_metric == ACCURACY
            max_wrong = n * (1 - self._metric_floor()) + 1e-6 if counts_errors else None
        if loss_ceiling is None and max_worse is None and max_wrong is None:
            return None
        labels = np.asarray(self.valset.data.features.get("labels", []))

        def give_up(rows: list[int], losses: np.ndarray, outputs: dict[str, np.ndarray]) -> bool:
            totals["loss"] += float(losses.sum(dtype=np.float64))
            if loss_ceiling is not None and totals["loss"] > loss_ceiling * n * margin:
                return True
            if max_worse is not None:
                totals["worse"] += int(np.sum(losses > self.reference.losses[rows]))
                if totals["worse"] >= max_worse:
                    return True
            if max_wrong is not None:
                totals["wrong"] += int(np.sum(outputs["logits"].argmax(-1) != labels[rows]))
                return totals["wrong"] > max_wrong
            return False

        return give_up

    # -- what a candidate saves -------------------------------------------------------------------
    def saving(self, plan: Plan, candidate: Unit) -> float:
        """Effective MACs per token (faster / accurate) or bytes (smaller) that `candidate` saves on `plan`."""
        new = candidate.apply(plan, self.layout)
        if self.config.goal == "smaller":
            return float(self.weight_bytes(plan) - self.weight_bytes(new))
        seq_len = self.config.seq_len
        return float(effective_macs_per_token(plan, seq_len) - effective_macs_per_token(new, seq_len))

    def weight_bytes(self, plan: Plan) -> int:
        """Bytes of the weights a plan can change: the encoder's and those of the model's tables."""
        return encoder_bytes(plan) + table_bytes(plan, self.tables)

    # -- phases -----------------------------------------------------------------------------------
    def run(self) -> Plan:
        if self.state.finished:  # a job resumed after its search: keep the plan found (and recovered from)
            return self.plan
        self._vocabulary_step()
        phases = [("top_k", self._top_k_phase)] if self.config.top_k else []
        if self.config.goal == "smaller":  # the tables save the most bytes: they get the budget first
            phases.append(("embeddings", self._tables_phase))
        if self.config.goal == "accurate":
            phases += [("layers", self._accurate_layers_phase), ("precision", self._precision_phase)]
        else:
            phases += [("blocks", self._budget_phase), ("units", self._budget_phase),
                       ("precision", self._precision_phase)]
        for name, phase in phases:
            with tqdm(desc=name, disable=not self.progress, dynamic_ncols=True, unit="trial") as bar:
                for candidate in phase(name):
                    if self.try_candidate(candidate, name, bar) is not None:
                        bar.update(1)
        self.state.finished = True
        self._checkpoint()
        return self.plan

    def _vocabulary_step(self) -> None:
        """smaller: keep only the training vocabulary; the validation examples are training data (or a split
        like it) whose tokens are all kept, so the measurements stay what they were."""
        if self.config.goal != "smaller" or not self.config.prune_vocab or self.vocabulary is None \
                or self.plan.vocab_kept is not None:
            return
        self.plan.embeddings = {**self.plan.embeddings, **self.vocabulary}
        self.plan.validate()
        self.planned.apply(self.plan)
        self._checkpoint()
        log.info("vocabulary: %d tokens kept, those of the training examples", len(self.plan.vocab_kept))

    def _top_k_phase(self, phase: str) -> Iterator[Candidate]:
        for layer in reversed(range(self.layout.num_layers)):
            for k in self.config.top_k:
                yield Candidate("top_k", layer, value=k)
                trial = self._done.get(Candidate("top_k", layer, value=k).name)
                if trial is not None and trial.accepted:
                    break

    def _accurate_layers_phase(self, phase: str) -> Iterator[Candidate]:
        for layer in reversed(range(self.layout.num_layers)):
            for block, unit in (("ffn", "group"), ("attention", "head")):
                block_candidate = Candidate(block, layer)
                yield block_candidate
                trial = self._done.get(block_candidate.name)
                if trial is None or trial.accepted or trial.loss is None \
                        or trial.loss >= ACCURATE_GROUP_SLACK * trial.best_before:
                    continue
                units = [Candidate(unit, layer, i) for i in range(self._units(unit))]
                yield from self._ranked(f"{phase}.{layer}.{unit}", units, fresh=False)

    def _units(self, kind: str) -> int:
        return self.layout.num_heads if kind == "head" else self.layout.num_groups

    def _budget_phase(self, phase: str) -> Iterator[Candidate]:
        kinds = ("attention", "ffn") if phase == "blocks" else ("head", "group")
        candidates = [Candidate(kind, layer, i) for layer in range(self.layout.num_layers) for kind in kinds
                      for i in ([None] if kind in ("attention", "ffn") else range(self._units(kind)))]
        yield from self._with_patience(self._ranked(phase, candidates, per_saving=True))

    def _precision_phase(self, phase: str) -> Iterator[Unit]:
        order = {"faster": ("int8",), "smaller": ("int4", "int8"), "accurate": ("int8",)}[self.config.goal]
        # faster ranks other units than the per-matrix ones: its own key keeps rankings and slice names apart
        key = f"{phase}.qkv" if self.config.goal == "faster" else phase
        ranked = list(self._ranked(key, self._precision_units(order[0]), per_saving=self.config.goal != "accurate"))
        if self.config.goal == "accurate":
            for candidate in ranked:
                yield from self._with_fallbacks(candidate, order[1:])
        else:
            yield from self._bisect(key, ranked, 0, len(ranked), order[0], order[1:])

    def _precision_units(self, value: str) -> list[Unit]:
        """Each matrix at precision `value`; faster takes a layer's Q, K and V as one bundle
        (`L3.attention.qkv@int8`), since ORT runs them in int8 only all together (FUSED_QKV_ROLES)."""
        units: list[Unit] = []
        for layer in range(self.layout.num_layers):
            matrices = [Candidate("precision", layer, role=role, value=value) for role in MATRIX_ROLES]
            if self.config.goal == "faster":
                qkv = tuple(c for c in matrices if c.role in FUSED_QKV_ROLES)
                units.append(Bundle(f"L{layer}.attention.qkv@{value}", qkv))
                matrices = [c for c in matrices if c not in qkv]
            units += matrices
        return units

    def _tables_phase(self, phase: str) -> Iterator[Candidate]:
        """smaller: each table outside the encoder, most bytes saved first, int4 else int8. A table changes the
        input of layer 0 (embeddings) or only the head after the last layer."""
        last = self.layout.num_layers - 1
        first = [Candidate("table", last if table == "head" else 0, role=table, value="int4") for table in self.tables]
        for candidate in self._stored_order(phase, first, self._by_bytes_saved):
            yield from self._with_fallbacks(candidate, ("int8",))

    def _by_bytes_saved(self, candidates: list[Candidate]) -> list[Candidate]:
        savings = {c: self.saving(self.plan, c) for c in candidates}
        return sorted((c for c in candidates if savings[c] > 0), key=lambda c: (-savings[c], c.name))

    def _bisect(self, key: str, ranked: list[Unit], start: int, end: int, value: str,
                fallbacks: tuple[str, ...]) -> Iterator[Unit]:
        """Try ranked[start:end] (matrices or Q/K/V bundles at precision `value`, named in slices after the
        ranking `key`) as one bundle; if undone, each half in turn, down to single units, which then try the
        fallback precisions. Mostly harmless quantization costs a few trials, not one per matrix."""
        if start >= end:
            return
        if end - start == 1:
            yield from self._with_fallbacks(ranked[start], fallbacks)
            return
        bundle = Bundle(f"{key}[{start}:{end}]@{value}", tuple(ranked[start:end]))
        yield bundle
        trial = self._done.get(bundle.name)
        if trial is None or trial.accepted:
            return
        middle = (start + end) // 2
        yield from self._bisect(key, ranked, start, middle, value, fallbacks)
        yield from self._bisect(key, ranked, middle, end, value, fallbacks)

    def _with_fallbacks(self, candidate: Unit, fallbacks: tuple[str, ...]) -> Iterator[Unit]:
        """`candidate`, then while it is undone the same matrix or table at each fallback precision (bundles
        come only from faster, which has no fallback)."""
        yield candidate
        for value in fallbacks:
            trial = self._done.get(candidate.name)
            if trial is None or trial.accepted:
                return
            candidate = replace(candidate, value=value)
            yield candidate

    def _with_patience(self, candidates: Iterator[Candidate]) -> Iterator[Candidate]:
        misses = 0
        for candidate in candidates:
            yield candidate
            trial = self._done.get(candidate.name)
            if trial is None:
                continue
            misses = 0 if trial.accepted else misses + 1
            if misses >= self.config.patience:
                log.info("stopping after %d rejections in a row", misses)
                return

    # -- ranking ----------------------------------------------------------------------------------
    def _ranked(self, key: str, candidates: list[Unit], per_saving: bool = False,
                fresh: bool = True) -> Iterator[Unit]:
        """`candidates` least significant first (per unit saved if `per_saving`). Later layers first among
        equals."""
        def by_significance(live: list[Unit]) -> list[Unit]:
            significance = self._significance(live, fresh) if live else {}
            if per_saving:
                savings = {c: self.saving(self.plan, c) for c in live}
                live = [c for c in live if savings[c] > 0]
                significance = {c: significance[c] / savings[c] for c in live}
            return sorted(live, key=lambda c: (significance[c], -c.layer, c.name))

        yield from self._stored_order(key, candidates, by_significance)

    def _stored_order(self, key: str, candidates: list[Unit],
                      order: Callable[[list[Unit]], list[Unit]]) -> Iterator[Unit]:
        """The candidates `order` picks and sorts among those that apply, computed once and kept in the state
        under `key`, so a resumed search follows the same order."""
        if key not in self.state.rankings:
            live = [c for c in candidates if c.applies_to(self.plan, self.layout)]
            self.state.rankings[key] = [c.name for c in order(live)]
            self._checkpoint()
        by_name = {c.name: c for c in candidates}
        yield from (by_name[name] for name in self.state.rankings[key])

    def _significance(self, candidates: list[Unit], fresh: bool = True) -> dict[Unit, float]:
        """Exact loss changes from the analysis when it covers every candidate; else first-order scores,
        measured at the current plan (`fresh`) or reused from the last measurement. A bundle's is the sum of
        its members'."""
        singles = {c for unit in candidates for c in single_candidates(unit)}
        by_name = self._analysis_loss_changes()
        if not all(c.name in by_name for c in singles):
            if fresh or self._scores is None:
                self.planned.apply(self.plan)
                self._scores = first_order_scores(self.model, self.valset, self.layout, ("int8", "int4"),
                                                  progress=self.progress)
            scores = self._scores
            by_name = {c.name: abs(scores.matrix_estimate.get((c.layer, c.role, c.value), 0.0))
                       if c.kind == "precision" else scores.score[c.component] for c in singles}
        return {unit: sum(by_name[c.name] for c in single_candidates(unit)) for unit in candidates}

    def _analysis_loss_changes(self) -> dict[str, float]:
        """Exact single-change loss changes by candidate name, from the analysis document if given."""
        if self.analysis is None:
            return {}
        found = {row["name"]: row["loss_change"] for row in self.analysis["components"] if row["loss_change"] is not None}
        for row in self.analysis["matrices"]:
            for p in ("int8", "int4"):
                found[Candidate("precision", row["layer"], role=row["role"], value=p).name] = row[p]["loss_change"]
        return found

    # -- results ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Validation figures of the original model and of the plan found, with what the plan costs."""
        return {
            "baseline": {"loss": self.reference.loss, "metrics": self.valset.metrics(self.reference.outputs),
                         "macs_per_token": macs_per_token(self.identity, self.config.seq_len),
                         "encoder_bytes": encoder_bytes(self.identity),
                         "table_bytes": table_bytes(self.identity, self.tables)},
            "approximated": {"loss": self.current.loss, "metrics": self.valset.metrics(self.current.outputs),
                             "macs_per_token": macs_per_token(self.plan, self.config.seq_len),
                             "encoder_bytes": encoder_bytes(self.plan),
                             "table_bytes": table_bytes(self.plan, self.tables)},
            "trials": len(self.state.trials),
            "seconds": self.state.seconds,
            "accepted": [t.candidate for t in self.state.trials if t.accepted],
        }

    def close(self) -> nn.Module:
        return self.planned.close()

