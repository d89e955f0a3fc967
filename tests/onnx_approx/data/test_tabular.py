"""User tables (CSV / TSV / JSONL): columns, the label rule, and bad input."""

import json

import pytest

from onnx_approx.data import load_table


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_string_labels_sorted(tmp_path):
    path = _write(tmp_path, "t.csv", 'text,pair,label\n"hello, world",x,pos\nbye,y,neg\nok,z,neutral\n')
    task, examples = load_table(path, "text", "pair", "label")
    assert task.label_names == ("neg", "neutral", "pos")
    assert task.kind == "classification" and task.text_fields == ("text", "pair")
    assert [e.label for e in examples] == [2, 0, 1]
    assert examples[0].text_a == "hello, world" and examples[0].text_b == "x"
    assert examples[1].source.endswith("t.csv:3")
    assert task.metrics == ("accuracy", "matthews_correlation") and task.main_metric == "accuracy"


def test_integer_labels_keep_their_ids(tmp_path):
    path = _write(tmp_path, "t.csv", "text,label\na,1\nb,01\nc,0\nd,2\n")
    task, examples = load_table(path, "text")
    assert task.label_names == ("0", "1", "2")
    assert [e.label for e in examples] == [1, 1, 0, 2]


def test_binary_table_reports_f1(tmp_path):
    task, _ = load_table(_write(tmp_path, "t.csv", "text,label\na,1\nb,0\n"), "text")
    assert task.metrics == ("accuracy", "f1", "matthews_correlation")


def test_dev_file_reuses_training_label_names(tmp_path):
    task, _ = load_table(_write(tmp_path, "train.csv", "text,label\na,pos\nb,neg\n"), "text")
    _, dev = load_table(_write(tmp_path, "dev.csv", "text,label\nc,pos\nd,pos\n"), "text",
                        label_names=task.label_names)
    assert [e.label for e in dev] == [1, 1]
    with pytest.raises(ValueError, match=r"dev2\.csv:2: bad label 'meh': expected one of neg, pos"):
        load_table(_write(tmp_path, "dev2.csv", "text,label\nc,meh\n"), "text", label_names=task.label_names)


def test_regression_needs_the_flag(tmp_path):
    path = _write(tmp_path, "t.csv", "a,b,score\nx,y,3.5\nz,w,1\n")
    with pytest.raises(ValueError, match="non-integer numbers.*regression"):
        load_table(path, "a", "b", "score")
    task, examples = load_table(path, "a", "b", "score", regression=True)
    assert task.kind == "regression" and task.num_labels == 1 and task.main_metric == "pearson"
    assert [e.label for e in examples] == [3.5, 1.0]


def test_tsv_keeps_quotes_literal(tmp_path):
    path = _write(tmp_path, "t.tsv", 'sentence\tlabel\n"quoted start\t1\nplain\t0\n')
    _, examples = load_table(path, "sentence")
    assert examples[0].text_a == '"quoted start'


def test_jsonl(tmp_path):
    rows = [{"q": "a", "label": "yes"}, {"q": "b", "label": "no"}, {"q": "c", "label": "yes"}]
    path = _write(tmp_path, "t.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    task, examples = load_table(path, "q")
    assert task.name == "jsonl" and task.label_names == ("no", "yes")
    assert [e.label for e in examples] == [1, 0, 1] and examples[2].source.endswith("t.jsonl:3")


def test_unlabeled_file(tmp_path):
    path = _write(tmp_path, "t.csv", "text\na\nb\n")
    task, examples = load_table(path, "text", label_column=None, label_names=("neg", "pos"))
    assert [e.label for e in examples] == [None, None] and task.label_names == ("neg", "pos")
    with pytest.raises(ValueError, match="unlabeled file needs"):
        load_table(path, "text", label_column=None)


@pytest.mark.parametrize("name,content,kwargs,needle", [
    ("t.csv", "text,lbl\na,1\n", {}, r"t\.csv:2: missing column 'label'; available columns: text, lbl"),
    ("t.csv", "txt,label\na,1\n", {}, r"missing column 'text'"),
    ("t.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n', {}, r"t\.jsonl:2: missing column 'label'"),
    ("t.csv", "", {}, "is empty"),
    ("t.jsonl", "\n\n", {}, "is empty"),
    ("t.csv", "text,label\n", {}, "no data rows"),
    ("t.csv", "text,label\na,1\nb,1\n", {}, "only one distinct label '1'"),
    ("t.csv", "text,label\na,x\nb,x\n", {}, "only one distinct label 'x'"),
    ("t.csv", "text,label\na,1\nb,-1\n", {}, "negative class id"),
    ("t.csv", "text,label\na,1\nb\n", {}, r"t\.csv:3: expected 2 fields"),
    ("t.csv", "text,label\na,1\nb,\n", {}, r"t\.csv:3: empty label"),
    ("t.csv", "text,label\na,1\nb,nan\n", {"regression": True}, r"t\.csv:3: bad label 'nan'"),
    ("t.jsonl", '{"text": "a", "label": 1}\n{"text": 5, "label": 0}\n', {},
     r"t\.jsonl:2: column 'text' must hold text"),
    ("t.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0.5}\n', {}, r"t\.jsonl:2: bad label 0\.5"),
    ("t.jsonl", '{"text": "a", "label": 1}\nnot json\n', {}, r"t\.jsonl:2: invalid JSON"),
    ("t.jsonl", '["a", 1]\n', {}, r"t\.jsonl:1: expected a JSON object"),
    ("t.xlsx", "x", {}, "unsupported table format"),
])
def test_bad_tables(tmp_path, name, content, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        load_table(_write(tmp_path, name, content), "text", **kwargs)


def test_missing_table_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_table(tmp_path / "nope.csv", "text")
