"""Task registry: names, aliases, label counts and metric declarations."""

import pytest

from onnx_approx.data import TASKS, TaskSpec, get_task


@pytest.mark.parametrize("alias,name", [
    ("SST-2", "sst2"), ("sst2", "sst2"), ("sst_2", "sst2"), ("STS-B", "stsb"), ("CoLA", "cola"),
    ("MRPC", "mrpc"), ("RTE", "rte"), ("QNLI", "qnli"), ("WNLI", "wnli"), ("SQuAD", "squad"),
    ("squad-v1.1", "squad"), ("CoLA-axformer", "cola-axformer"), ("rte_axformer", "rte-axformer"),
    ("WNLI-AxFormer", "wnli-axformer"),
])
def test_aliases_resolve(alias, name):
    assert get_task(alias).name == name


def test_taskspec_passes_through():
    task = TASKS["rte"]
    assert get_task(task) is task


def test_unknown_task_lists_known_ones():
    with pytest.raises(ValueError) as err:
        get_task("sst3")
    message = str(err.value)
    assert "sst3" in message
    for name in TASKS:
        assert name in message


@pytest.mark.parametrize("name,main,others", [
    ("sst2", "accuracy", ()), ("mrpc", "f1", ("accuracy",)), ("cola", "matthews_correlation", ()),
    ("rte", "accuracy", ()), ("qnli", "accuracy", ()), ("wnli", "accuracy", ()),
    ("stsb", "pearson", ("spearman",)), ("squad", "f1", ("exact_match",)),
])
def test_glue_main_metrics(name, main, others):
    task = get_task(name)
    assert task.main_metric == main
    assert set(task.metrics) == {main, *others}


def test_label_counts_and_kinds():
    assert get_task("stsb").num_labels == 1 and get_task("stsb").label_names is None
    assert get_task("rte").label_names == ("entailment", "not_entailment")
    assert get_task("squad").kind == "qa"
    for name in ("sst2", "mrpc", "cola", "rte", "qnli", "wnli"):
        assert get_task(name).num_labels == 2


def test_axformer_tasks_mirror_their_base():
    for base in ("cola", "rte", "wnli"):
        ax = get_task(f"{base}-axformer")
        assert (ax.kind, ax.text_fields, ax.label_names, ax.metrics, ax.main_metric) == (
            TASKS[base].kind, TASKS[base].text_fields, TASKS[base].label_names, TASKS[base].metrics,
            TASKS[base].main_metric)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(kind="ranking"), "kind"),
    (dict(text_fields=()), "text fields"),
    (dict(label_names=None), "label_names"),
    (dict(label_names=("only",)), "at least 2"),
    (dict(main_metric="f1"), "main metric"),
])
def test_taskspec_rejects_inconsistent_declarations(kwargs, needle):
    fields = dict(name="t", kind="classification", text_fields=("text",), label_names=("a", "b"),
                  metrics=("accuracy",), main_metric="accuracy") | kwargs
    with pytest.raises(ValueError, match=needle):
        TaskSpec(**fields)
