import json

import pytest

from onnx_approx.plan import Plan, PlanError

DIMS = {"num_layers": 2, "num_heads": 4, "hidden_size": 32, "head_dim": 8, "intermediate_size": 48}


def _plan_dict(**layer0):
    plan = Plan.identity("bert", DIMS).to_dict()
    plan["layers"][0].update(layer0)
    return plan


class TestPlanRoundTrip:
    def test_identity_saves_and_loads(self, tmp_path):
        plan = Plan.identity("bert", DIMS, goal="faster")
        plan.layers[1].attention.heads_kept = [0, 2]
        plan.layers[0].precision["ffn.intermediate"] = "int4"
        plan.save(tmp_path / "plan.json")
        loaded = Plan.load(tmp_path / "plan.json")
        assert loaded == plan
        assert loaded.kept_heads(1) == [0, 2]
        assert loaded.kept_heads(0) == [0, 1, 2, 3]
        assert loaded.layers[0].precision_of("ffn.intermediate") == "int4"
        assert loaded.layers[0].precision_of("attention.query") == "fp32"
        assert not loaded.is_identity()
        assert Plan.identity("bert", DIMS).is_identity()

    def test_file_has_the_documented_field_names(self, tmp_path):
        Plan.identity("bert", DIMS).save(tmp_path / "plan.json")
        data = json.loads((tmp_path / "plan.json").read_text())
        assert data["format"] == 1
        assert set(data["layers"][0]) == {"index", "attention", "ffn", "precision"}
        assert set(data["layers"][0]["attention"]) == {"remove", "heads_kept", "sign_match_top_k"}
        assert set(data["layers"][0]["ffn"]) == {"remove", "neurons_kept"}

    def test_removed_block_keeps_nothing(self):
        plan = Plan.from_dict(_plan_dict(attention={"remove": True}, ffn={"remove": True}))
        assert plan.kept_heads(0) == [] and plan.kept_neurons(0) == []


class TestPlanValidation:
    @pytest.mark.parametrize(
        "layer0, message",
        [
            ({"attention": {"heads_kept": [0, 4]}}, "layers[0].attention.heads_kept: index 4 out of range 0..3"),
            ({"attention": {"heads_kept": [2, 1]}}, "sorted"),
            ({"attention": {"heads_kept": []}}, "remove the block instead"),
            ({"ffn": {"neurons_kept": [-1]}}, "index -1 out of range"),
            ({"attention": {"sign_match_top_k": 0}}, "sign_match_top_k"),
            ({"precision": {"attention.query": "int3"}}, "unknown precision 'int3'"),
            ({"precision": {"attention.qkv": "int8"}}, "unknown matrix 'attention.qkv'"),
            ({"attention": {"heads": [1]}}, "layers[0]"),
        ],
    )
    def test_bad_field_is_named(self, layer0, message):
        with pytest.raises(PlanError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
            Plan.from_dict(_plan_dict(**layer0))

    def test_layer_count_mismatch(self):
        data = _plan_dict()
        data["layers"].pop()
        with pytest.raises(PlanError, match="'layers' has 1 entries but num_layers is 2"):
            Plan.from_dict(data)

    def test_wrong_format_version(self):
        data = _plan_dict()
        data["format"] = 2
        with pytest.raises(PlanError, match="'format' must be 1"):
            Plan.from_dict(data)

    def test_plan_for_another_model(self):
        plan = Plan.identity("bert", DIMS)
        with pytest.raises(PlanError, match="num_heads=4, the model has num_heads=12"):
            plan.check_fits("bert", {**DIMS, "num_heads": 12})
        with pytest.raises(PlanError, match="model_type 'bert'"):
            plan.check_fits("distilbert", DIMS)

    def test_invalid_json_names_the_line(self, tmp_path):
        path = tmp_path / "plan.json"
        path.write_text('{\n"format": 1,\n"layers": [,]\n}')
        with pytest.raises(PlanError, match="line 3"):
            Plan.load(path)

    def test_save_refuses_an_invalid_plan_and_writes_nothing(self, tmp_path):
        plan = Plan.identity("bert", DIMS)
        plan.layers[0].attention.heads_kept = [9]
        with pytest.raises(PlanError):
            plan.save(tmp_path / "plan.json")
        assert list(tmp_path.iterdir()) == []


VOCAB = {"vocab_kept": [0, 1, 2, 3, 4, 9, 17], "special_tokens": {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}}


class TestEmbeddingsAndHeadFields:
    def test_new_fields_round_trip(self, tmp_path):
        plan = Plan.identity("bert", DIMS)
        plan.embeddings = {"precision": "int4", "position_precision": "int8", **VOCAB}
        plan.head = {"precision": "int4"}
        plan.save(tmp_path / "plan.json")
        loaded = Plan.load(tmp_path / "plan.json")
        assert loaded == plan and not loaded.is_identity()
        assert (loaded.embedding_precision("word"), loaded.embedding_precision("position")) == ("int4", "int8")
        assert loaded.head_precision == "int4" and loaded.unk_token_id == 1
        summary = loaded.summary()
        assert summary["vocab_kept"] == 7 and summary["head_precision"] == "int4"
        assert summary["position_embeddings_precision"] == "int8"

    def test_a_plan_written_before_the_new_fields_loads_unchanged(self):
        data = _plan_dict()
        del data["head"]
        data["embeddings"] = {"precision": "int8"}
        plan = Plan.from_dict(data)
        assert plan.head_precision == "fp32" and plan.embedding_precision("position") == "fp32"
        assert plan.vocab_kept is None and plan.vocabulary_rows(30) is None
        assert not plan.is_identity()

    @pytest.mark.parametrize(("field", "value"), [
        ("head", {"precision": "int8"}),
        ("embeddings", {"precision": "fp32", "position_precision": "int4"}),
        ("embeddings", {"precision": "fp32", **VOCAB}),
    ])
    def test_each_new_field_makes_a_plan_that_changes_something(self, field, value):
        plan = Plan.identity("bert", DIMS)
        setattr(plan, field, value)
        assert not plan.is_identity()

    def test_vocabulary_rows_send_tokens_not_kept_to_unk(self):
        plan = Plan.from_dict({**_plan_dict(), "embeddings": {"precision": "fp32", **VOCAB}})
        assert plan.vocabulary_rows(19) == [0, 1, 2, 3, 4, 1, 1, 1, 1, 5, 1, 1, 1, 1, 1, 1, 1, 6, 1]
        with pytest.raises(PlanError, match=r"embeddings\.vocab_kept: token id 17 out of range 0\.\.9"):
            plan.vocabulary_rows(10)

    @pytest.mark.parametrize(("top", "message"), [
        ({"embeddings": "int4"}, "embeddings must be a JSON object"),
        ({"embeddings": {"precision": "int4", "vocab": [1]}}, "embeddings: unknown field 'vocab'"),
        ({"embeddings": {"position_precision": "int3"}}, "embeddings.position_precision: unknown precision 'int3'"),
        ({"head": {"precision": "int2"}}, "head.precision: unknown precision 'int2'"),
        ({"head": {"pooler": "int8"}}, "head: unknown field 'pooler'"),
        ({"embeddings": {**VOCAB, "vocab_kept": [0, 1, 3, 4]}},
         "embeddings.vocab_kept must keep the special token 'cls' (id 2)"),
        ({"embeddings": {"vocab_kept": [0, 1, 2]}}, "embeddings.special_tokens must name the 'unk' token id"),
        ({"embeddings": {**VOCAB, "special_tokens": {"pad": 0}}}, "embeddings.special_tokens must name the 'unk'"),
        ({"embeddings": {**VOCAB, "special_tokens": {"unk": "[UNK]"}}}, "embeddings.special_tokens must be null or"),
        ({"embeddings": {**VOCAB, "vocab_kept": [0, 2, 1, 3, 4]}}, "embeddings.vocab_kept must be sorted"),
        ({"embeddings": {**VOCAB, "vocab_kept": [-1, 0, 1, 2, 3, 4]}}, "embeddings.vocab_kept: index -1 out of range"),
        ({"embeddings": {**VOCAB, "vocab_kept": []}}, "embeddings.vocab_kept is empty"),
    ])
    def test_bad_field_is_named(self, top, message):
        with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
            Plan.from_dict({**_plan_dict(), **top})
