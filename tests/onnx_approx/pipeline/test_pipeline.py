"""A whole recipe on a tiny BERT and a few dozen sentences: deliverables, figures checked independently,
reuse of unchanged steps, sharing of fine-tuning between goals, resumption after interruptions."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from transformers import AutoTokenizer

import graph_passes.apply
import onnx_approx.approximation
import onnx_approx.export
import onnx_approx.finetune
import onnx_approx.significance.analysis
from onnx_approx.pipeline import run_recipe
from onnx_approx.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def calls(monkeypatch):
    """How often each job function the steps call ran."""
    counts = {"finetune": 0, "analyze": 0, "approximate": 0, "export_folder": 0, "apply_plan_folder": 0}
    for module in (onnx_approx.finetune, onnx_approx.significance.analysis, onnx_approx.approximation,
                   onnx_approx.export, graph_passes.apply):
        for name in counts:
            real = getattr(module, name, None)
            if real is not None:
                def counted(*args, _real=real, _name=name, **kwargs):
                    counts[_name] += 1
                    return _real(*args, **kwargs)
                monkeypatch.setattr(module, name, counted)
    return counts


def ran(report: Path) -> list[str]:
    return [s["name"] for s in json.loads(report.with_suffix(".json").read_text())["steps"] if not s["reused"]]


def independent_accuracy(folder: Path, tsv: Path) -> float:
    """The delivered model.onnx run by a bare ORT session, one unpadded sentence at a time."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    rows = [line.split("\t") for line in tsv.read_text().splitlines()[1:]]
    correct = 0
    for text, label in rows:
        feed = {k: np.asarray(v, dtype=np.int64)[None] for k, v in tokenizer(text).items() if k in names}
        correct += int(session.run(None, feed)[0].argmax()) == int(label)
    return correct / len(rows)


def test_a_recipe_delivers_a_model_that_scores_as_reported(recipe_workspace, calls, tmp_path):
    recipe = load_recipe(recipe_workspace("tiny-faster"))
    report = run_recipe(recipe)
    out = recipe.out
    assert report == out / "report.md"
    for name in ("model.onnx", "plan.json", "config.json", "tokenizer.json", "report.json"):
        assert (out / name).is_file(), name
    for name in ("heatmap.png", "pareto.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    doc = json.loads((out / "report.json").read_text())
    assert doc["files"] == sorted(p.name for p in out.iterdir() if p.is_file())

    # The delivered model is the searched plan realized by the passes, and scores what the report says.
    assert json.loads((out / "plan.json").read_text())["layers"] == \
        json.loads((out / "steps/approximate/plan.json").read_text())["layers"]
    dev = doc["dev"]["metrics"]
    assert independent_accuracy(out, tmp_path / "dev.tsv") == pytest.approx(dev["approximated"]["accuracy"])
    change = (dev["approximated"]["accuracy"] - dev["ort-fp32"]["accuracy"]) / dev["ort-fp32"]["accuracy"]
    assert doc["dev"]["relative_change_vs_fp32"] == pytest.approx(change)
    assert dev["ort-fp32"] == dev["torch"]  # the fp32 export agrees with PyTorch

    # Ratios and sizes are those of the bench measurements.
    engines = {e["name"]: e for e in doc["bench"]["engines"]}
    p50 = {name: e["timings"]["1x16"]["p50_ms"] for name, e in engines.items()}
    latency = doc["latency"]["1x16"]
    assert latency["vs_fp32"] == pytest.approx(p50["ort-fp32"] / p50["approximated"])
    assert latency["vs_int8"] == pytest.approx(p50["ort-int8"] / p50["approximated"])
    assert doc["size"]["model_bytes"] == (out / "model.onnx").stat().st_size
    markdown = report.read_text()
    assert "| dev accuracy |" in markdown and "### What changed where" in markdown and "## Steps" in markdown

    # The goal's targets: the drop is this run's, the latency targets (at 1x128) were not benched here.
    targets = {t["measure"]: t for t in doc["targets"]}
    assert list(targets) == ["vs_fp32", "vs_int8", "rel_drop"]
    assert targets["rel_drop"]["measured"] == pytest.approx(-change)
    assert targets["rel_drop"]["met"] == (-change <= 0.005)
    assert targets["vs_fp32"]["met"] is None
    assert targets["vs_fp32"]["shortfall"] == "not measured: the bench has no 1x128"
    assert "## Targets" in markdown and "| p50 speed-up over ORT fp32 at 1x128, at least 4x | – | – |" in markdown
    assert "Where the time goes" not in markdown  # no latency target missed

    # Where the time goes: the model and the fastest int8 baseline profiled at the bench's shape.
    profile = json.loads((out / "steps/profile/profile.json").read_text())
    assert doc["profile"] == profile and profile["shape"] == "1x16" and profile["threads"] is None
    assert list(profile["engines"]) == ["approximated", "ort-int8"]
    model = profile["engines"]["approximated"]
    assert model["runs"] == 20 and sum(o["share"] for o in model["op_types"]) == pytest.approx(1, abs=1e-6)
    assert sorted(p.name for p in (out / "steps/profile").iterdir()) == ["profile.json", "step.json"]

    # Fine-tuning held out the validation split (40 % of 60 sentences) the analysis measured on.
    finetuned = json.loads(Path(doc["steps"][0]["folder"], "metrics.json").read_text())
    assert finetuned["train"]["samples"] == 36 and "24 examples carved" in finetuned["train"]["held_out"]
    assert calls == {"finetune": 1, "analyze": 1, "approximate": 1, "export_folder": 1, "apply_plan_folder": 1}

    # Nothing changed: nothing runs. A changed search setting reruns the search and what follows only.
    assert ran(run_recipe(recipe)) == [] and calls["approximate"] == 1
    changed = load_recipe(recipe_workspace("tiny-faster", **{"search.patience": 3}))
    assert ran(run_recipe(changed)) == ["approximate", "export", "passes", "evaluate", "bench", "profile"]
    assert calls["finetune"] == calls["analyze"] == 1

    # The conventional baseline of the same model and task reuses the fine-tuning and the baselines.
    baseline = load_recipe(recipe_workspace("tiny-baseline", goal="none"))
    assert ran(run_recipe(baseline)) == ["evaluate", "bench"] and calls["finetune"] == 1
    names = {p.name for p in baseline.out.iterdir()}
    assert {"model.onnx", "report.md", "pareto.png"} <= names and "heatmap.png" not in names
    base_doc = json.loads((baseline.out / "report.json").read_text())
    assert base_doc["model_engine"] == "ort-fp32" and base_doc["dev"]["metrics"]["ort-fp32"] == dev["ort-fp32"]
    assert base_doc["targets"] == [] and base_doc["profile"] is None
    assert "## Targets" not in (baseline.out / "report.md").read_text()


def test_an_interrupted_run_resumes_without_redoing_finished_work(recipe_workspace, calls, monkeypatch):
    from onnx_approx.search import Search

    recipe = load_recipe(recipe_workspace("tiny-smaller", goal="smaller"))
    real_checkpoint = Search._checkpoint

    def die_after_one_trial(self):
        real_checkpoint(self)
        if self.state.trials:
            raise KeyboardInterrupt

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # Killed in the search: its checkpoint survives in the step's partial folder.
    monkeypatch.setattr(Search, "_checkpoint", die_after_one_trial)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe)
    steps = recipe.out / "steps"
    before = json.loads((steps / ".approximate.partial" / "search_state.json").read_text())["trials"]
    assert len(before) == 1 and not (steps / "approximate").exists()

    # Killed in the export: the search resumed (its first trial kept, not measured again) and finished.
    monkeypatch.setattr(Search, "_checkpoint", real_checkpoint)
    real_export = onnx_approx.export.export_folder
    monkeypatch.setattr(onnx_approx.export, "export_folder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe)
    after = json.loads((steps / "approximate" / "search_state.json").read_text())["trials"]
    assert after[:1] == before and len(after) > 1
    assert sorted(p.name for p in steps.iterdir()) == ["approximate"]  # no half-written export

    monkeypatch.setattr(onnx_approx.export, "export_folder", real_export)
    report = run_recipe(recipe)
    assert ran(report) == ["export", "passes", "baselines", "evaluate", "bench", "profile"]
    assert calls["finetune"] == calls["analyze"] == 1 and calls["approximate"] == 2  # started once, resumed once
    assert json.loads((recipe.out / "report.json").read_text())["recipe"]["goal"] == "smaller"
