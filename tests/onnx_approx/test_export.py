import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from onnx_approx.export import TORCHSCRIPT_OPSET, export_folder, export_onnx, export_onnx_torchscript
from onnx_approx.io_utils import OutputExistsError
from onnx_approx.modeling import load_model


def _inputs(names, batch=3, seq=11, seed=1):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (batch, seq), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    full = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return {k: full[k] for k in names}


class TestExportParity:
    @pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
    @pytest.mark.parametrize("head", ["classification", "qa"])
    @pytest.mark.parametrize("exporter", ["dynamo", "torchscript", "torchscript-eager"])
    def test_onnx_matches_pytorch(self, tiny_model_dir, tmp_path, model_type, head, exporter):
        loaded = load_model(tiny_model_dir(model_type, head=head))
        if exporter == "dynamo":
            path = export_onnx(loaded.model, tmp_path / "model.onnx")
        else:
            path = export_onnx_torchscript(loaded.model, tmp_path / "model.onnx", eager_attention=exporter.endswith("eager"))
            assert loaded.model.config._attn_implementation == "sdpa"  # restored
        session = ort.InferenceSession(str(path))
        names = [i.name for i in session.get_inputs()]
        expected_inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if model_type == "bert" else [])
        assert names == expected_inputs
        # A batch and sequence length other than the export example: the axes are dynamic.
        inputs = _inputs(names, batch=3, seq=11)
        with torch.no_grad():
            ref = loaded.model(**inputs)
        outputs = session.run(None, {k: v.numpy() for k, v in inputs.items()})
        out_names = [o.name for o in session.get_outputs()]
        assert out_names == (["start_logits", "end_logits"] if head == "qa" else ["logits"])
        for name, value in zip(out_names, outputs):
            np.testing.assert_allclose(value, ref[name].numpy(), atol=1e-5)
        model = onnx.load(str(path))
        opset = model.opset_import[0].version
        assert opset == TORCHSCRIPT_OPSET if exporter.startswith("torchscript") else opset >= 18


class TestExportFolder:
    def test_layout_and_refusal(self, tiny_model_dir, tmp_path):
        src = tiny_model_dir("bert")
        out = tmp_path / "onnx"
        export_folder(src, out)
        files = {p.name for p in out.iterdir()}
        assert {"model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json"} <= files
        with pytest.raises(OutputExistsError):
            export_folder(src, out)
        export_folder(src, out, overwrite=True)
