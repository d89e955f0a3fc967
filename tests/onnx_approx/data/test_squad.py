"""SQuAD v1.1 loading: the shared files against README counts, and malformed files."""

import json

import pytest

from onnx_approx.data import load_split, load_squad


@pytest.mark.parametrize("split,questions,articles", [("dev", 10570, 48), ("train", 3807, 11)])
def test_shared_squad_counts(shared_data, split, questions, articles):
    examples = load_split("squad", split, shared_data)
    assert len(examples) == questions
    assert len({ex.id for ex in examples}) == questions
    raw = json.loads((shared_data / ("squad/dev-v1.1.json" if split == "dev"
                                     else "squad/train-v1.1.sample-first11articles.json")).read_text())
    assert len(raw["data"]) == articles
    for ex in examples[:50]:
        for text, start in zip(ex.answers, ex.answer_starts):
            assert ex.context[start:start + len(text)] == text


def test_squad_first_dev_question(shared_data):
    first = load_split("squad", "dev", shared_data)[0]
    assert first.question == "Which NFL team represented the AFC at Super Bowl 50?"
    assert first.answers == ["Denver Broncos"] * 3 and first.answer_starts == [177] * 3


def test_squad_max_samples(shared_data):
    a = load_split("squad", "train", shared_data, max_samples=7, seed=3)
    assert len(a) == 7 and a == load_split("squad", "train", shared_data, max_samples=7, seed=3)


def _squad(tmp_path, doc) -> object:
    path = tmp_path / "s.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _doc(answer_start=0):
    return {"data": [{"title": "t", "paragraphs": [{"context": "paris is big", "qas": [
        {"id": "q1", "question": "what?", "answers": [{"text": "paris", "answer_start": answer_start}]}]}]}],
        "version": "1.1"}


def test_small_file_loads(tmp_path):
    (ex,) = load_squad(_squad(tmp_path, _doc()))
    assert (ex.id, ex.question, ex.context) == ("q1", "what?", "paris is big")
    assert (ex.answers, ex.answer_starts) == (["paris"], [0])


def test_truncated_json(tmp_path):
    text = json.dumps(_doc())
    with pytest.raises(ValueError, match=r"s\.json:1: invalid JSON"):
        load_squad(_squad(tmp_path, text[:-20]))


def test_empty_file(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        load_squad(_squad(tmp_path, ""))


def test_missing_field(tmp_path):
    doc = _doc()
    del doc["data"][0]["paragraphs"][0]["context"]
    with pytest.raises(ValueError, match=r"data\[0\]\.paragraphs\[0\]: missing field 'context'"):
        load_squad(_squad(tmp_path, doc))


def test_answer_offset_mismatch(tmp_path):
    with pytest.raises(ValueError, match="question q1: answer 'paris' is not at character 2"):
        load_squad(_squad(tmp_path, _doc(answer_start=2)))


def test_no_questions(tmp_path):
    with pytest.raises(ValueError, match="holds no questions"):
        load_squad(_squad(tmp_path, {"data": [], "version": "1.1"}))


def test_squad_has_no_val_split(tmp_path):
    with pytest.raises(ValueError, match="no split 'val'"):
        load_split("squad", "val", tmp_path)
