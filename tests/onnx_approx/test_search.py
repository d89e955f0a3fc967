import copy
import json
import math

import numpy as np
import pytest
import torch

from onnx_approx.approximate import apply_plan_torch
from onnx_approx.architectures import MATRIX_ROLES
from onnx_approx.costs import FUSED_QKV_ROLES
from onnx_approx.evaluate import TorchEngine, evaluate_engine
from onnx_approx.plan import Plan
from onnx_approx.search import GOALS, Search, SearchConfig, SearchStateMismatch
from onnx_approx.significance.ablation import LayerInputCache
from onnx_approx.significance.gates import GateLayout

pytestmark = pytest.mark.usefixtures("single_thread")

SETTINGS = {"model": "tiny", "task": "sst2"}


class Killed(Exception):
    pass


def run_search(model, valset, state_path, goal, **config):
    search = Search(model, valset, GateLayout.for_model(model), SearchConfig(goal=goal, **config), state_path,
                    SETTINGS, progress=False)
    plan = search.run()
    summary = search.summary()
    search.close()
    return plan, summary, search.state.trials


def precision_phase(model, valset, state_path, stop_after: int | None = None, **config) -> Search:
    """The faster goal's precision phase alone, on the unpruned model (every layer keeps Q, K and V); cut off
    (as if killed: the state is written after each trial) once `stop_after` trials are recorded."""
    search = Search(copy.deepcopy(model), valset, GateLayout.for_model(model),
                    SearchConfig(goal="faster", max_rel_drop=0.9, **config), state_path, SETTINGS, progress=False)
    for unit in search._precision_phase("precision"):
        search.try_candidate(unit, "precision")
        if len(search.state.trials) == stop_after:
            break
    search.close()
    return search


def qkv_precisions(plan: Plan) -> list[set[str]]:
    return [{lp.precision_of(role) for role in FUSED_QKV_ROLES} for lp in plan.layers]


def one_by_one_losses(model, valset) -> np.ndarray:
    with torch.no_grad():
        return np.asarray([model(**valset.data.collate([i], with_token_type_ids=True, with_labels=True)).loss.item()
                           for i in range(len(valset))])


@pytest.fixture
def setup(lively_model, tiny_valset):
    model, tokenizer, _ = lively_model("bert")
    return model, tiny_valset(tokenizer, n=24, labeler=model)


class TestGoals:
    def test_accurate_keeps_only_changes_that_lower_loss_for_most_samples(self, setup, tmp_path):
        model, valset = setup
        plan, summary, trials = run_search(copy.deepcopy(model), valset, tmp_path / "state.json", "accurate")
        best = summary["baseline"]["loss"]
        for trial in trials:
            assert trial.best_before == best
            if trial.loss is None:  # cut short: it could not have been accepted
                assert not trial.accepted
                continue
            improves = trial.loss < best and trial.no_worse_fraction > 0.5
            assert trial.accepted == improves, trial
            best = trial.loss if trial.accepted else best
        assert any(t.accepted for t in trials) and not plan.is_identity()
        # The loss the search reports, recomputed on the physically pruned model, one example at a time.
        losses = one_by_one_losses(apply_plan_torch(copy.deepcopy(model), plan), valset)
        assert losses.mean() == pytest.approx(summary["approximated"]["loss"], abs=1e-5)
        assert losses.mean() < summary["baseline"]["loss"]

    @pytest.mark.parametrize("goal", ["faster", "smaller"])
    def test_budget_goals_stay_within_the_allowed_drop(self, setup, tmp_path, goal):
        model, valset = setup
        plan, summary, trials = run_search(copy.deepcopy(model), valset, tmp_path / "state.json", goal,
                                           max_rel_drop=0.1, patience=4)
        floor = summary["baseline"]["metrics"]["accuracy"] * 0.9
        for trial in trials:
            assert trial.accepted == (trial.metric is not None and trial.metric >= floor - 1e-12), trial
        pruned = apply_plan_torch(copy.deepcopy(model), plan)
        accuracy = evaluate_engine(TorchEngine(pruned, True), None, valset.task, valset.examples,
                                   data=valset.data).metrics["accuracy"]
        assert accuracy == pytest.approx(summary["approximated"]["metrics"]["accuracy"])
        assert accuracy >= floor
        saved = "macs_per_token" if goal == "faster" else "encoder_bytes"
        assert summary["approximated"][saved] < summary["baseline"][saved]
        if goal == "smaller":
            assert any(t.candidate.endswith("@int4") for t in trials)
            assert trials[0].phase == "embeddings"  # the tables come first, under the same rule (checked above)
        else:  # int8 speeds up a layer's fused Q/K/V Attention only when all three are int8
            assert all(len(precisions) == 1 for precisions in qkv_precisions(plan))
            assert any(t.phase == "precision" and t.accepted for t in trials)


    @pytest.mark.parametrize("goal", ["accurate", "faster"])
    def test_early_rejection_changes_no_decision(self, setup, tmp_path, goal):
        model, valset = setup
        runs = [run_search(copy.deepcopy(model), valset, tmp_path / f"{early}.json", goal, max_rel_drop=0.1,
                           patience=4, early_reject=early) for early in (True, False)]
        (plan_early, _, trials_early), (plan_full, _, trials_full) = runs
        assert plan_early == plan_full
        assert [(t.candidate, t.accepted) for t in trials_early] == [(t.candidate, t.accepted) for t in trials_full]
        assert any(t.loss is None for t in trials_early)  # some trials really were cut short


class TestTables:
    @pytest.mark.parametrize(("max_rel_drop", "max_loss_increase", "all_int4"), [(0.9, None, True), (0.1, 0.0, False)])
    def test_smaller_quantizes_the_tables_within_the_budget(self, setup, tmp_path, max_rel_drop, max_loss_increase,
                                                            all_int4):
        model, valset = setup
        model = copy.deepcopy(model)
        if not all_int4:  # one outlier per row: int4 blocks of 32 then flatten the rest of each row's first block
            with torch.no_grad():
                model.get_input_embeddings().weight[:, 0] = 40.0
        plan, summary, trials = run_search(copy.deepcopy(model), valset, tmp_path / "state.json", "smaller",
                                           max_rel_drop=max_rel_drop, max_loss_increase=max_loss_increase, patience=4)
        floor = summary["baseline"]["metrics"]["accuracy"] * (1 - max_rel_drop)
        ceiling = None if max_loss_increase is None else summary["baseline"]["loss"] * (1 + max_loss_increase)

        def within_budget(trial):
            return trial.metric is not None and trial.metric >= floor - 1e-12 and (
                ceiling is None or trial.loss <= ceiling)
        tables = [t for t in trials if t.phase == "embeddings"]
        assert tables and trials[:len(tables)] == tables
        # Most bytes saved first: the word table (vocab x hidden), the position table, the head's projection.
        assert [t.candidate for t in tables if t.candidate.endswith("@int4")] == [
            "embeddings.word@int4", "embeddings.position@int4", "head@int4"]
        vocab, hidden = model.config.vocab_size, model.config.hidden_size
        assert tables[0].saving == 4 * vocab * hidden - vocab * hidden // 2 - 2 * vocab * math.ceil(hidden / 32)
        for table, name in (("word", "embeddings.word"), ("position", "embeddings.position"), ("head", "head")):
            tried = [t for t in tables if t.candidate.startswith(name + "@")]
            assert [t.candidate for t in tried] == [f"{name}@int4"] + ([] if tried[0].accepted else [f"{name}@int8"])
            for trial in tried:
                assert trial.accepted == within_budget(trial), trial
            kept = [t.candidate.rpartition("@")[2] for t in tried if t.accepted]
            assert plan.table_precision(table) == (kept[0] if kept else "fp32")
        if all_int4:
            assert all(plan.table_precision(t) == "int4" for t in ("word", "position", "head"))
        else:  # a loss that may not rise undoes a table quantization (the word table's int4 on this model)
            assert any(not t.accepted for t in tables)
        assert Plan.from_dict(plan.to_dict()) == plan
        assert summary["approximated"]["table_bytes"] < summary["baseline"]["table_bytes"]
        # The loss the search ends with (tables measured from layer 0, the head from the last layer, on cached
        # inputs), recomputed on the physically pruned, fake-quantized model one example at a time.
        losses = one_by_one_losses(apply_plan_torch(copy.deepcopy(model), plan), valset)
        assert losses.mean() == pytest.approx(summary["approximated"]["loss"], abs=1e-5)

    def test_a_head_without_projection_is_not_tried(self, setup, tmp_path):
        model, valset = setup
        search = Search(copy.deepcopy(model), valset, GateLayout.for_model(model),
                        SearchConfig(goal="smaller", max_rel_drop=0.9, patience=1), tmp_path / "state.json", SETTINGS,
                        progress=False)
        del search.tables["head"]  # what `table_shapes` gives for a head without one (test_precision checks)
        plan = search.run()
        search.close()
        assert [t.candidate for t in search.state.trials if t.phase == "embeddings"] == [
            "embeddings.word@int4", "embeddings.position@int4"]
        assert plan.head_precision == "fp32"


class TestCheckpoint:
    @pytest.mark.parametrize("goal", ["faster", "smaller"])
    def test_killed_search_resumes_without_redoing_trials(self, setup, tmp_path, monkeypatch, goal):
        model, valset = setup
        reference_plan, _, reference_trials = run_search(copy.deepcopy(model), valset, tmp_path / "a.json", goal,
                                                         max_rel_drop=0.1, patience=4)
        assert len(reference_trials) > 8
        # faster: killed early on; smaller: killed in the tables phase, just after its first trial
        kill_at = 5 if goal == "faster" else [t.phase for t in reference_trials].index("embeddings") + 1
        assert kill_at < len(reference_trials)
        original_checkpoint = Search._checkpoint

        def checkpoint_then_die(self):
            original_checkpoint(self)
            if len(self.state.trials) == kill_at:
                raise Killed

        monkeypatch.setattr(Search, "_checkpoint", checkpoint_then_die)
        with pytest.raises(Killed):
            run_search(copy.deepcopy(model), valset, tmp_path / "b.json", goal, max_rel_drop=0.1, patience=4)
        monkeypatch.setattr(Search, "_checkpoint", original_checkpoint)

        measured = []
        original_measure = LayerInputCache.measure

        def counting_measure(self, start_layer=0, record=False, **kwargs):
            measured.append(start_layer)
            return original_measure(self, start_layer, record, **kwargs)

        monkeypatch.setattr(LayerInputCache, "measure", counting_measure)
        seconds_before_kill = json.loads((tmp_path / "b.json").read_text())["seconds"]
        plan, summary, trials = run_search(copy.deepcopy(model), valset, tmp_path / "b.json", goal,
                                           max_rel_drop=0.1, patience=4)
        assert 0 < seconds_before_kill < summary["seconds"]  # the report's search time spans both runs
        assert plan == reference_plan
        assert [t.candidate for t in trials] == [t.candidate for t in reference_trials]
        # baseline cache + re-measuring the resumed plan + only the trials not done before the kill
        assert len(measured) == 2 + len(reference_trials) - kill_at

    def test_other_settings_are_refused(self, setup, tmp_path):
        model, valset = setup
        run_search(copy.deepcopy(model), valset, tmp_path / "state.json", "faster", max_rel_drop=0.1, patience=1)
        with pytest.raises(SearchStateMismatch, match="search"):
            run_search(copy.deepcopy(model), valset, tmp_path / "state.json", "faster", max_rel_drop=0.2)


class TestBisection:
    def test_harmless_matrices_go_in_few_trials_and_harmful_ones_fall_back(self):
        from types import SimpleNamespace

        from onnx_approx.significance.candidates import Bundle, Candidate

        ranked = [Candidate("precision", i // 6, role=r, value="int4")
                  for i, r in enumerate(["attention.query", "attention.key", "attention.value", "attention.output",
                                         "ffn.intermediate", "ffn.output"] * 4)]
        harmful = {ranked[5].name, ranked[17].name}
        search = object.__new__(Search)
        search._done = {}
        tried, kept = [], set()
        for candidate in search._bisect("precision", ranked, 0, len(ranked), "int4", ("int8",)):
            members = candidate.members if isinstance(candidate, Bundle) else (candidate,)
            accepted = not any(m.name in harmful for m in members)
            search._done[candidate.name] = SimpleNamespace(accepted=accepted)
            tried.append(candidate.name)
            kept |= {m.name for m in members} if accepted else set()
        assert kept == {c.name for c in ranked} - harmful | {n.replace("@int4", "@int8") for n in harmful}
        assert len(tried) <= 1 + 2 * 2 * 5 + 2  # two bad leaves among 24: two paths of depth 5, plus fallbacks


class TestFusedQKV:
    """faster: ORT runs a layer's fused Q/K/V Attention in int8 only when all three are int8 (FUSED_QKV_ROLES)."""

    @pytest.mark.parametrize("goal", GOALS)
    def test_only_faster_takes_q_k_v_as_one_unit(self, goal):
        search = object.__new__(Search)
        dims = {"num_layers": 2, "num_heads": 4, "head_dim": 8, "intermediate_size": 48}
        search.config, search.layout = SearchConfig(goal=goal), GateLayout.from_dims(dims)
        units = search._precision_units("int8")
        singles = [f"L{i}.{role}@int8" for i in range(2) for role in MATRIX_ROLES]
        if goal == "faster":
            assert [u.name for u in units] == [name for i in range(2) for name in (
                f"L{i}.attention.qkv@int8", f"L{i}.attention.output@int8", f"L{i}.ffn.intermediate@int8",
                f"L{i}.ffn.output@int8")]
            assert [m.name for u in units for m in getattr(u, "members", (u,))] == singles
        else:
            assert [u.name for u in units] == singles

    @pytest.mark.parametrize(("max_loss_increase", "all_int8"), [(None, True), (0.0, False)])
    def test_precision_phase_quantizes_a_layers_q_k_v_together(self, setup, tmp_path, max_loss_increase, all_int8):
        model, valset = setup
        search = precision_phase(model, valset, tmp_path / "a.json", max_loss_increase=max_loss_increase)
        names = [t.candidate for t in search.state.trials]
        others = ("attention.output", "ffn.intermediate", "ffn.output")
        assert sorted(search.state.rankings["precision.qkv"]) == sorted(
            [f"L{i}.attention.qkv@int8" for i in range(2)] + [f"L{i}.{role}@int8" for i in range(2) for role in others])
        assert all(len(precisions) == 1 for precisions in qkv_precisions(search.plan))
        if all_int8:  # a generous budget: every matrix at once
            assert names == ["precision.qkv[0:8]@int8"]
            assert all(lp.precision_of(role) == "int8" for lp in search.plan.layers for role in MATRIX_ROLES)
            return
        # A bound on the loss undoes some slices: bisection reaches a layer's Q/K/V bundle on its own.
        assert names[0] == "precision.qkv[0:8]@int8" and not search.state.trials[0].accepted
        assert any(name.endswith(".attention.qkv@int8") for name in names)
        assert len(set(names)) == len(names)
        # Cut off after 3 trials, the phase resumes with the same trials and ends with the same plan.
        precision_phase(model, valset, tmp_path / "b.json", stop_after=3, max_loss_increase=max_loss_increase)
        resumed = precision_phase(model, valset, tmp_path / "b.json", max_loss_increase=max_loss_increase)
        assert [t.candidate for t in resumed.state.trials] == names and resumed.plan == search.plan

    def test_a_per_matrix_faster_state_resumes_with_q_k_v_units(self, setup, tmp_path):
        """A state written before Q/K/V units (a "precision" ranking of single matrices, a lone int8 Q kept, a
        rejected slice) resumes: its names clash with none of the new ones, and Q, K, V end int8 together.
        Finished, it keeps its plan (a job resumed after the search may have recovered from it)."""
        model, valset = setup
        path = tmp_path / "state.json"
        reference_plan, _, reference_trials = run_search(copy.deepcopy(model), valset, path, "faster",
                                                         max_rel_drop=0.1, patience=4)
        state = json.loads(path.read_text())
        done = [t for t in state["trials"] if t["phase"] != "precision"]
        layer = next(i for i, lp in enumerate(reference_plan.layers) if not lp.attention.remove)
        old = [dict(done[-1], phase="precision", candidate="precision[0:12]@int8", accepted=False),
               dict(done[-1], phase="precision", candidate=f"L{layer}.attention.query@int8", accepted=True)]
        for i, lp in enumerate(state["plan"]["layers"]):
            lp["precision"] = {"attention.query": "int8"} if i == layer else {}
        del state["rankings"]["precision.qkv"]
        state["rankings"]["precision"] = [f"L{i}.{role}@int8" for i in range(2) for role in MATRIX_ROLES]
        path.write_text(json.dumps({**state, "trials": done + old, "finished": True}))
        plan, _, trials = run_search(copy.deepcopy(model), valset, path, "faster", max_rel_drop=0.1, patience=4)
        assert [t.candidate for t in trials] == [t["candidate"] for t in done + old]
        assert qkv_precisions(plan)[layer] == {"int8", "fp32"} and plan.to_dict() == state["plan"]
        path.write_text(json.dumps({**state, "trials": done + old, "finished": False}))
        plan, _, trials = run_search(copy.deepcopy(model), valset, path, "faster", max_rel_drop=0.1, patience=4)
        assert [t.candidate for t in trials] == [t["candidate"] for t in done + old] + [
            t.candidate for t in reference_trials if t.phase == "precision"]
        assert plan == reference_plan and qkv_precisions(plan)[layer] == {"int8"}


class TestVocabulary:
    @pytest.mark.parametrize(("goal", "prune_vocab", "pruned"), [("smaller", True, True), ("smaller", False, False),
                                                                  ("faster", True, False)])
    def test_smaller_keeps_only_the_training_vocabulary(self, lively_model, tiny_valset, tmp_path, goal,
                                                        prune_vocab, pruned):
        from onnx_approx.vocabulary import vocabulary_fields

        model, tokenizer, _ = lively_model("bert")
        valset = tiny_valset(tokenizer, n=12, labeler=model)
        vocabulary = vocabulary_fields(tokenizer, valset.examples)
        search = Search(copy.deepcopy(model), valset, GateLayout.for_model(model),
                        SearchConfig(goal=goal, max_rel_drop=0.0, patience=1, prune_vocab=prune_vocab),
                        tmp_path / "state.json", SETTINGS, progress=False, vocabulary=vocabulary)
        plan = search.run()
        summary = search.summary()
        search.close()
        assert plan.vocab_kept == (vocabulary["vocab_kept"] if pruned else None)
        assert len(vocabulary["vocab_kept"]) < model.config.vocab_size
        # Validation tokens are all kept: the figures the search reports hold for the plan as written.
        approximated = apply_plan_torch(copy.deepcopy(model), plan)
        losses = one_by_one_losses(approximated, valset)
        assert losses.mean() == pytest.approx(summary["approximated"]["loss"], abs=1e-5)
