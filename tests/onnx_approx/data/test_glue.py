"""GLUE-style TSV loading: every shared file against the row and label counts in shared/data/README.md,
each quirk, and every bad-input case on small temporary files."""

import collections
from pathlib import Path

import pytest

from onnx_approx.data import get_task, load_split

# (task, split, rows, {label id: count} or None when unlabeled / regression), from shared/data/README.md.
README_COUNTS = [
    ("sst2", "train", 67349, {0: 29780, 1: 37569}),
    ("sst2", "dev", 872, {0: 428, 1: 444}),
    ("mrpc", "train", 3668, {0: 1194, 1: 2474}),
    ("mrpc", "dev", 408, {0: 129, 1: 279}),
    ("cola", "train", 8551, {0: 2528, 1: 6023}),
    ("cola", "dev", 1043, {0: 322, 1: 721}),
    ("rte", "train", 2490, {0: 1249, 1: 1241}),  # 0 = entailment
    ("rte", "dev", 277, {0: 146, 1: 131}),
    ("stsb", "train", 5749, None),
    ("stsb", "dev", 1500, None),
    ("qnli", "dev", 5463, {0: 2702, 1: 2761}),
    ("cola-axformer", "train", 7250, {0: 2162, 1: 5088}),
    ("cola-axformer", "val", 1301, {0: 366, 1: 935}),
    ("cola-axformer", "dev", 1043, {0: 322, 1: 721}),
    ("cola-axformer", "test", 1063, None),
    ("rte-axformer", "train", 2127, {0: 1078, 1: 1049}),
    ("rte-axformer", "val", 363, {0: 171, 1: 192}),
    ("rte-axformer", "dev", 277, {0: 146, 1: 131}),
    ("rte-axformer", "test", 3000, None),
    ("wnli-axformer", "train", 518, {0: 257, 1: 261}),
    ("wnli-axformer", "val", 117, {0: 66, 1: 51}),
    ("wnli-axformer", "dev", 71, None),
    ("wnli-axformer", "test", 146, None),
    ("wnli", "train", 518 + 117, {0: 257 + 66, 1: 261 + 51}),  # AxFormer train + val = GLUE WNLI train
]


@pytest.mark.parametrize("task,split,rows,labels", README_COUNTS, ids=[f"{t}-{s}" for t, s, *_ in README_COUNTS])
def test_shared_file_rows_and_labels(shared_data, task, split, rows, labels):
    examples = load_split(task, split, shared_data)
    assert len(examples) == rows
    if labels is not None:
        assert dict(collections.Counter(ex.label for ex in examples)) == labels
    if split == "test":
        assert all(ex.label is None for ex in examples)
    assert (examples[0].text_b is not None) == (len(get_task(task).text_fields) == 2)
    assert all(ex.text_a for ex in examples)


def test_axformer_dev_equals_glue_dev(shared_data):
    for name in ("cola", "rte"):
        glue = [(e.text_a, e.text_b, e.label) for e in load_split(name, "dev", shared_data)]
        ax = [(e.text_a, e.text_b, e.label) for e in load_split(f"{name}-axformer", "dev", shared_data)]
        assert glue == ax


def test_axformer_train_plus_val_is_glue_train(shared_data):
    for name in ("cola", "rte"):
        glue = collections.Counter((e.text_a, e.text_b, e.label) for e in load_split(name, "train", shared_data))
        ax = collections.Counter((e.text_a, e.text_b, e.label) for split in ("train", "val")
                                 for e in load_split(f"{name}-axformer", split, shared_data))
        assert glue == ax


def test_stsb_scores_in_range(shared_data):
    scores = [ex.label for ex in load_split("stsb", "dev", shared_data)]
    assert all(isinstance(s, float) and 0.0 <= s <= 5.0 for s in scores)
    assert scores[0] == 5.0  # first dev row: "A man with a hard hat is dancing." / "... wearing ..." 5.000


def test_quoting_is_off(shared_data):
    # README: 72 RTE-train fields and 19 QNLI-dev fields start with a literal quote.
    for task, split, expected in (("rte", "train", 72), ("qnli", "dev", 19)):
        examples = load_split(task, split, shared_data)
        assert sum(t.startswith('"') for e in examples for t in (e.text_a, e.text_b)) == expected


def test_mrpc_bom_header_and_first_row(shared_data):
    first = load_split("mrpc", "train", shared_data)[0]
    assert first.text_a.startswith("Amrozi accused his brother")
    assert first.text_b.startswith("Referring to him as only")
    assert first.label == 1
    assert first.source.endswith("MRPC/train.tsv:2")


def test_cola_headerless_and_no_final_newline(shared_data):
    dev = load_split("cola", "dev", shared_data)
    assert dev[0].text_a == "The sailors rode the breeze clear of the rocks."
    assert dev[0].source.endswith(":1")
    assert dev[-1].text_a == "John talked to Bill about himself."
    test = load_split("cola-axformer", "test", shared_data)  # the one CoLA file with a header
    assert test[0].text_a == "Bill whistled past the house."


def test_sst2_trailing_space_removed(shared_data):
    dev = load_split("sst2", "dev", shared_data)
    assert dev[0].text_a == "it 's a charming and often affecting journey ."


def test_max_samples_is_seeded_subset_in_file_order(shared_data):
    full = load_split("rte", "dev", shared_data)
    a = load_split("rte", "dev", shared_data, max_samples=20, seed=1)
    b = load_split("rte", "dev", shared_data, max_samples=20, seed=1)
    c = load_split("rte", "dev", shared_data, max_samples=20, seed=2)
    assert a == b and a != c and len(a) == 20
    positions = [full.index(ex) for ex in a]
    assert positions == sorted(positions)


def test_qnli_train_missing_names_the_path(shared_data):
    with pytest.raises(FileNotFoundError, match=r"glue/QNLI/train\.tsv"):
        load_split("qnli", "train", shared_data)


# ---- bad input on temporary data folders ---------------------------------------------------------

def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_string_label_names_file_and_line(tmp_path):
    _write(tmp_path, "glue/RTE/dev.tsv",
           "index\tsentence1\tsentence2\tlabel\n0\ta b\tc\tentailment\n1\td\te\tentailmnt\n")
    with pytest.raises(ValueError) as err:
        load_split("rte", "dev", tmp_path)
    assert "RTE/dev.tsv:3" in str(err.value) and "'entailmnt'" in str(err.value)
    assert "entailment, not_entailment" in str(err.value)


def test_bad_numeric_label(tmp_path):
    _write(tmp_path, "glue/SST-2/train.tsv", "sentence\tlabel\ngood \t1\nbad \t2\n")
    with pytest.raises(ValueError, match=r"SST-2/train\.tsv:3: bad label '2'"):
        load_split("sst2", "train", tmp_path)


def test_bad_regression_score(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    _write(tmp_path, "glue/STS-B/dev.tsv", header + "0\tg\tf\ty\to\ts\ts\ta\tb\tfive\n")
    with pytest.raises(ValueError, match=r"STS-B/dev\.tsv:2: bad label 'five'"):
        load_split("stsb", "dev", tmp_path)


def test_missing_column_lists_available(tmp_path):
    _write(tmp_path, "glue/SST-2/dev.tsv", "text\tlabel\ngood\t1\n")
    with pytest.raises(ValueError) as err:
        load_split("sst2", "dev", tmp_path)
    assert "'sentence'" in str(err.value) and "text, label" in str(err.value) and "SST-2/dev.tsv" in str(err.value)


def test_missing_label_column(tmp_path):
    _write(tmp_path, "glue/SST-2/dev.tsv", "sentence\tscore\ngood\t1\n")
    with pytest.raises(ValueError, match=r"missing column 'label'.*sentence, score"):
        load_split("sst2", "dev", tmp_path)


def test_headerless_file_with_wrong_field_count(tmp_path):
    _write(tmp_path, "axformer-splits/RTE/val.tsv", "0\tpremise\thypothesis\n")
    with pytest.raises(ValueError, match=r"RTE/val\.tsv:1: expected 4 tab-separated fields"):
        load_split("rte-axformer", "val", tmp_path)


@pytest.mark.parametrize("content,needle", [("", "is empty"), ("sentence\tlabel\n", "no data rows")])
def test_empty_files(tmp_path, content, needle):
    _write(tmp_path, "glue/SST-2/dev.tsv", content)
    with pytest.raises(ValueError, match=needle):
        load_split("sst2", "dev", tmp_path)


def test_missing_file_and_unknown_split(tmp_path):
    (tmp_path / "glue").mkdir()
    with pytest.raises(FileNotFoundError, match=r"glue/MRPC/dev\.tsv"):
        load_split("mrpc", "dev", tmp_path)
    with pytest.raises(ValueError, match="no split 'val'.*train, dev"):
        load_split("mrpc", "val", tmp_path)


def test_missing_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_split("sst2", "dev", tmp_path / "nowhere")


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'glue'"):
        load_split("glue", "dev")
