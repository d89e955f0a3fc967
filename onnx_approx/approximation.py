"""The approximate job: search a plan for a goal on the validation split, recover, measure on dev, write.

OUT receives (in this order, each atomically): search_state.json while searching (a killed run resumes
from it; search_state.roundN.json for later rounds, rounds/N/ holds a finished round's recovered model
until the job ends), model/ (full-size HF folder with the recovered weights, tokenizer and plan.json:
the input of `export` + graph passes; only when recovery ran), pruned/ (own pruned format, with
--save-pruned), report.md, and plan.json last: a folder with plan.json is finished.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from onnx_approx.approximate import apply_plan_torch
from onnx_approx.dataset import default_max_seq_len
from onnx_approx.evaluate import TorchEngine, evaluate_engine
from onnx_approx.io_utils import atomic_output_dir, atomic_write_text, check_output_dir, read_json
from onnx_approx.modeling import LoadedModel, count_parameters, load_model
from onnx_approx.plan import Plan
from onnx_approx.plan_report import report_markdown
from onnx_approx.pruning import save_pruned
from onnx_approx.recovery import RecoveryConfig, recover
from onnx_approx.search import Search, SearchConfig
from onnx_approx.significance.analysis import AnalysisConfig, load_validation
from onnx_approx.significance.gates import GateLayout
from onnx_approx.significance.precision import table_shapes
from onnx_approx.significance.report import load_significance
from onnx_approx.task_data import TaskData
from onnx_approx.vocabulary import unknown_fraction, vocabulary_fields

log = logging.getLogger(__name__)

STATE_FILE = "search_state.json"
PLAN_FILE = "plan.json"
REPORT_FILE = "report.md"
MODEL_DIR = "model"
PRUNED_DIR = "pruned"
ROUNDS_DIR = "rounds"  # recovered models of finished rounds, kept until the job ends (to resume)
RECOVERY_FILE = "recovery.json"


def prepare_output(out_dir: Path, overwrite: bool) -> None:
    """Start afresh (--overwrite), resume (only a search state there), or refuse a finished/foreign folder."""
    if overwrite and out_dir.exists():
        shutil.rmtree(out_dir)
    resumable = (out_dir / STATE_FILE).is_file() and not (out_dir / PLAN_FILE).exists()
    if not resumable:
        check_output_dir(out_dir, overwrite=False)
    out_dir.mkdir(parents=True, exist_ok=True)


def _checked_analysis(folder: str | Path, loaded: LoadedModel, config: AnalysisConfig) -> dict[str, Any]:
    doc = load_significance(folder)
    dims = loaded.dims()
    if doc.get("model_type") != loaded.spec.model_type or doc.get("dims") != dims:
        raise ValueError(f"{folder}: analysis of a {doc.get('model_type')} model with {doc.get('dims')}, "
                         f"but the model is {loaded.spec.model_type} with {dims}")
    if config.group_size is not None and doc["group_size"] != config.group_size:
        raise ValueError(f"{folder}: analysis used neuron groups of {doc['group_size']}, "
                         f"--group-size asks for {config.group_size}")
    return doc


def approximate(model: str, data: TaskData, out_dir: str | Path, analysis_config: AnalysisConfig,
                search_config: SearchConfig | None, recovery: RecoveryConfig, *, rounds: int = 1,
                analysis_dir: str | Path | None = None, save_pruned_model: bool = False,
                overwrite: bool = False, given_plan: Plan | None = None,
                max_dev_samples: int | None = None) -> dict[str, Any]:
    """Run the whole job (see the module doc); returns the facts of the report.

    With `rounds` > 1, search and recovery alternate: each round's search starts from the model the
    previous recovery left and the plan so far, its budget still measured against the original model.
    `given_plan` (with `search_config` None) skips the search: a hand-written plan recovered and reported.
    `max_dev_samples` reports on a seeded subset of dev (the one `finetune --max-dev-samples` scores).
    """
    if (search_config is None) == (given_plan is None):
        raise ValueError("approximate needs either a search configuration or a plan, not both")
    if rounds < 1 or (rounds > 1 and (recovery.epochs <= 0 or given_plan is not None)):
        raise ValueError(f"--rounds must be 1, or more with a search and recovery (--recover-epochs > 0); got {rounds}")
    out_dir = Path(out_dir)
    prepare_output(out_dir, overwrite)
    task = data.task
    loaded = load_model(model, task)
    if given_plan is not None:
        given_plan.check_fits(loaded.spec.model_type, loaded.dims())
    max_seq_len = analysis_config.max_seq_len or default_max_seq_len(task)
    valset, rest, source = load_validation(loaded, data, analysis_config)
    analysis = None if analysis_dir is None else _checked_analysis(analysis_dir, loaded, analysis_config)
    group_size = analysis_config.group_size or (analysis["group_size"] if analysis else None)
    layout = GateLayout.from_dims(loaded.dims(), group_size)
    dev = _dev_examples(data, max_dev_samples, recovery.seed)
    vocabulary = None
    if search_config is not None and search_config.goal == "smaller" and search_config.prune_vocab:
        vocabulary = vocabulary_fields(loaded.tokenizer, [*valset.examples, *rest])

    def metrics(net: nn.Module, examples: list | None) -> dict[str, float] | None:
        if examples is None:
            return None
        engine = TorchEngine(net, loaded.uses_token_type_ids)
        return evaluate_engine(engine, loaded.tokenizer, task, examples, max_seq_len=max_seq_len).metrics

    settings = {"model": str(model), "task": task.name, "validation": dataclasses.asdict(analysis_config)}
    stages: dict[str, dict[str, Any]] = {"baseline": {"validation": None, "dev": metrics(loaded.model, dev)}}
    current, plan, reference, trials, seconds, recoveries = loaded.model, None, None, 0, 0.0, []
    for r in range(1, rounds + 1):
        if given_plan is None:
            state_file = out_dir / (STATE_FILE if r == 1 else f"search_state.round{r}.json")
            search = Search(current, valset, layout, search_config, state_file, {**settings, "round": r},
                            analysis if r == 1 else None, start_plan=plan, reference=reference, vocabulary=vocabulary)
            plan, found, reference = search.run(), search.summary(), search.reference
            search.close()
            seconds += found["seconds"]
            trials += found["trials"]
            log.info("round %d search: %d trials, %d kept", r, found["trials"], len(found["accepted"]))
            stages["baseline"]["validation"] = found["baseline"]["metrics"]
        else:
            plan = given_plan
            stages["baseline"]["validation"] = metrics(loaded.model, valset.examples)
        planned = apply_plan_torch(copy.deepcopy(current), plan)
        validation = found["approximated"]["metrics"] if given_plan is None else metrics(planned, valset.examples)
        name = "approximated" if rounds == 1 else f"round {r} searched"
        stages[name] = {"validation": validation, "dev": metrics(planned, dev)}
        if recovery.epochs <= 0:
            break
        round_dir = out_dir / ROUNDS_DIR / str(r)
        if (round_dir / "config.json").is_file():  # recovered before an interruption
            current = load_model(round_dir, task).model
            recoveries.append(read_json(round_dir / RECOVERY_FILE))
        else:
            round_recovery = recovery if r == 1 else dataclasses.replace(recovery, start_from=None)
            current, summary = recover(current, plan, loaded.tokenizer, task, rest, round_recovery,
                                       uses_token_type_ids=loaded.uses_token_type_ids, max_seq_len=max_seq_len,
                                       teacher=loaded.model)
            if r > 1:
                summary["start_from"] = f"round {r - 1}'s recovered model"
            with atomic_output_dir(round_dir, overwrite=True) as tmp:
                current.save_pretrained(tmp)
                loaded.tokenizer.save_pretrained(tmp)
                atomic_write_text(tmp / RECOVERY_FILE, json.dumps(summary, indent=2) + "\n")
            recoveries.append(summary)
        recovered = apply_plan_torch(copy.deepcopy(current), plan)
        name = "recovered" if rounds == 1 else f"round {r} recovered"
        stages[name] = {"validation": metrics(recovered, valset.examples), "dev": metrics(recovered, dev)}

    approximated = apply_plan_torch(copy.deepcopy(current), plan)
    searched = [k for k in stages if k.endswith("searched") or k == "approximated"][-1]
    if search_config is not None:
        plan.goal = search_config.goal
    plan.metrics = {
        "main_metric": task.main_metric,
        "baseline": {**stages["baseline"], "validation_loss": None if reference is None else reference.loss},
        "approximated": {**stages[list(stages)[-1]], "dev_before_recovery": stages[searched]["dev"]},
    }
    info = {
        "model": str(model), "task": task.name, "main_metric": task.main_metric, "validation": source,
        "bound": _bound(search_config),
        "stages": stages, "search": {"trials": trials, "seconds": seconds, "rounds": rounds},
        "parameters": {"baseline": count_parameters(loaded.model), "approximated": count_parameters(approximated)},
        "recovery": recoveries, "tables": table_shapes(loaded.model),
    }
    if plan.vocab_kept is not None:
        unknown = None if dev is None else unknown_fraction(loaded.tokenizer, dev, plan.vocab_kept)
        info["vocabulary"] = {"kept": len(plan.vocab_kept), "dev_unknown": unknown,
                              "total": loaded.model.get_input_embeddings().num_embeddings}
    if recoveries:
        with atomic_output_dir(out_dir / MODEL_DIR, overwrite=True) as tmp:
            current.save_pretrained(tmp)
            loaded.tokenizer.save_pretrained(tmp)
            plan.save(tmp / PLAN_FILE)
    if save_pruned_model:
        save_pruned(approximated, plan, out_dir / PRUNED_DIR, tokenizer=loaded.tokenizer, overwrite=True)
    atomic_write_text(out_dir / REPORT_FILE, report_markdown(plan, info))
    plan.save(out_dir / PLAN_FILE)
    shutil.rmtree(out_dir / ROUNDS_DIR, ignore_errors=True)  # only needed to resume
    return info


def _bound(search_config: SearchConfig | None) -> str:
    if search_config is None:
        return " (plan given, no search)"
    return "" if search_config.goal == "accurate" else f", max relative drop {search_config.max_rel_drop:g}"


def _dev_examples(data: TaskData, max_samples: int | None, seed: int) -> list | None:
    try:
        return data.load("dev", max_samples=max_samples, seed=seed)
    except ValueError as exc:  # a table task without --dev-file
        log.warning("no dev split (%s): reporting validation figures only", exc)
        return None
