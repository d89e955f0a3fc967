import copy

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from onnx_approx.approximate import apply_plan_torch
from onnx_approx.architectures import spec_for
from graph_passes.quantize import quantize_int4, quantize_int8
from onnx_approx.costs import (effective_macs_per_token, encoder_bytes, encoder_parameters, macs_per_token,
                               table_bytes)
from onnx_approx.plan import Plan
from onnx_approx.significance.precision import quantizable_tables, table_shapes

pytestmark = pytest.mark.usefixtures("single_thread")


def some_plan(model) -> Plan:
    spec = spec_for(model.config.model_type)
    plan = Plan.identity(spec.model_type, spec.dims(model.config))
    plan.layers[0].attention.heads_kept = [0, 3]
    plan.layers[0].ffn.neurons_kept = list(range(5, 25))
    plan.layers[1].attention.remove = True
    return plan


def encoder_matmul_macs(model, seq_len: int) -> float:
    """MACs per token counted by torch's FLOP counter over the encoder layers alone."""
    spec = spec_for(model.config.model_type)
    layers = model.base_model.get_submodule(spec.layers)
    x = torch.randn(1, seq_len, spec.dims(model.config)["hidden_size"])
    counter = FlopCounterMode(display=False)
    with counter:
        for layer in layers:
            x = layer(x, None)
    return counter.get_total_flops() / 2 / seq_len


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_macs_and_parameters_match_the_pruned_model(lively_model, model_type):
    model, _, _ = lively_model(model_type)
    model.config._attn_implementation = "eager"  # plain matmuls the counter sees
    for plan in (Plan.identity(model_type, spec_for(model_type).dims(model.config)), some_plan(model)):
        pruned = apply_plan_torch(copy.deepcopy(model), plan)
        layers = pruned.base_model.get_submodule(spec_for(model_type).layers)
        assert encoder_parameters(plan) == sum(p.numel() for p in layers.parameters())
        assert macs_per_token(plan, seq_len=16) == encoder_matmul_macs(pruned, 16)


def test_bytes_follow_precision(lively_model):
    model, _, _ = lively_model("bert")
    plan = Plan.identity("bert", spec_for("bert").dims(model.config))
    fp32 = encoder_bytes(plan)
    assert fp32 == 4 * encoder_parameters(plan)
    plan.layers[0].precision["ffn.intermediate"] = "int8"  # 48 x 32: 1 byte per weight + a scale per row
    assert fp32 - encoder_bytes(plan) == 48 * 32 * 3 - 48 * 4
    plan.layers[0].precision["ffn.intermediate"] = "int4"  # one block of 32 per row, its scale in float16
    assert fp32 - encoder_bytes(plan) == 48 * 32 * 4 - 48 * 32 // 2 - 48 * 2


def test_int8_credits_q_k_v_only_all_together():
    """ORT runs a layer's fused Q/K/V Attention in int8 only when all three are int8 (graph_passes)."""
    dims = {"num_layers": 2, "num_heads": 4, "head_dim": 8, "hidden_size": 32, "intermediate_size": 48}
    plan = Plan.identity("bert", dims)
    # per layer at S = 16: 4 heads x (4*32*8 + 2*16*8) = 5120, 48 neurons x 2*32 = 3072; 2 layers
    assert effective_macs_per_token(plan, 16) == macs_per_token(plan, 16) == 2 * (5120 + 3072)
    saved = 1 - 1 / 2.5  # an int8 matrix costs 1 / INT8_MATMUL_SPEEDUP of its MACs
    plan.layers[0].precision = {"attention.query": "int8", "attention.key": "int8", "ffn.intermediate": "int8"}
    assert effective_macs_per_token(plan, 16) == pytest.approx(16384 - 48 * 32 * saved)  # Q, K: no credit
    plan.layers[0].precision["attention.value"] = "int4"
    assert effective_macs_per_token(plan, 16) == pytest.approx(16384 - 48 * 32 * saved)
    plan.layers[0].precision["attention.value"] = "int8"
    assert effective_macs_per_token(plan, 16) == pytest.approx(16384 - (3 * 32 * 32 + 48 * 32) * saved)
    # layer 1 keeps 2 heads: Q, K, V of 16 x 32 and the output projection of 32 x 16, all int8
    plan.layers[1].attention.heads_kept = [0, 3]
    plan.layers[1].precision = dict.fromkeys(("attention.query", "attention.key", "attention.value",
                                              "attention.output"), "int8")
    assert macs_per_token(plan, 16) == 8192 + 2 * 1280 + 3072
    assert effective_macs_per_token(plan, 16) == pytest.approx(
        13824 - (3 * 32 * 32 + 48 * 32 + 4 * 16 * 32) * saved)
    plan.layers[1].attention.remove, plan.layers[1].attention.heads_kept = True, None  # nothing left to credit
    assert effective_macs_per_token(plan, 16) == pytest.approx(8192 + 3072 - (3 * 32 * 32 + 48 * 32) * saved)


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_table_bytes_are_what_the_graph_passes_store(lively_model, model_type):
    model, tokenizer, _ = lively_model(model_type)
    tables = quantizable_tables(model)
    shapes = table_shapes(model)
    assert set(shapes) == {"word", "position", "head"}

    def stored(weight: np.ndarray, precision: str) -> int:
        """Bytes of the initializers the quantize pass writes for a [rows, cols] table (int4: packed, fp16 scales)."""
        if precision == "int8":
            q, scale = quantize_int8(weight, 0)
            return q.astype(np.int8).nbytes + scale.astype(np.float32).nbytes
        if precision == "int4":
            q, scale = quantize_int4(weight, 1)
            return (q.size + 1) // 2 + scale.astype(np.float16).nbytes
        return weight.astype(np.float32).nbytes

    plan = Plan.identity(model_type, spec_for(model_type).dims(model.config))
    for word, position, head in [("fp32",) * 3, ("int4", "int8", "fp32"), ("int8", "int4", "int4")]:
        for table, precision in zip(("word", "position", "head"), (word, position, head)):
            plan.set_table_precision(table, precision)
        expected = sum(stored(tables[t].weight.detach().numpy(), plan.table_precision(t)) for t in tables)
        assert table_bytes(plan, shapes) == expected
    kept = list(range(10))  # a pruned vocabulary keeps only these rows of the word table
    plan.embeddings.update(vocab_kept=kept, special_tokens={"unk": 0})
    words = tables["word"].weight.detach().numpy()
    assert table_bytes(plan, shapes) == expected - stored(words, "int8") + stored(words[kept], "int8")
