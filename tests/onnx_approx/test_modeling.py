import pytest

from onnx_approx.data import get_task
from onnx_approx.model_sources import resolve_model_source
from onnx_approx.modeling import encoder_layers, load_model


class TestResolveModelSource:
    def test_alias_points_at_the_packaged_model(self):
        path = resolve_model_source("minilm-l6")
        assert path.endswith("model")

    def test_unknown_name_offline_is_refused(self, monkeypatch):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(ValueError, match="not a known alias .* HF_HUB_OFFLINE"):
            resolve_model_source("no-such-model-xyz")

    def test_folder_without_config(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="has no config.json"):
            resolve_model_source(tmp_path)

    def test_file_instead_of_folder(self, tmp_path):
        f = tmp_path / "model.onnx"
        f.write_text("x")
        with pytest.raises(ValueError, match="is a file"):
            resolve_model_source(f)


class TestLoadModel:
    @pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
    def test_heads_follow_the_task(self, tiny_model_dir, model_type):
        folder = tiny_model_dir(model_type)
        rte = load_model(folder, get_task("rte"))
        assert rte.model.config.id2label == {0: "entailment", 1: "not_entailment"}
        stsb = load_model(folder, get_task("stsb"))
        assert stsb.model.config.num_labels == 1 and stsb.model.config.problem_type == "regression"
        qa = load_model(folder, get_task("squad"))
        assert type(qa.model).__name__.endswith("ForQuestionAnswering")
        assert len(encoder_layers(rte.model)) == 2
        assert rte.dims()["num_heads"] == 4

    def test_unsupported_architecture(self, tmp_path):
        from transformers import GPT2Config

        GPT2Config(n_layer=1, n_head=2, n_embd=8).save_pretrained(tmp_path)
        with pytest.raises(ValueError, match="model_type 'gpt2' is not supported; supported: bert, distilbert, roberta"):
            load_model(tmp_path)
