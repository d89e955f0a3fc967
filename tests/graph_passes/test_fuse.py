import numpy as np
import onnx_ir as ir
import pytest

from graph_passes import CleanupPass, FusePass, PruneHeadsPass, RemoveBlocksPass, SignMatchPass
from graph_passes.sign_match_function import OP_TYPE


def _fused(model: ir.Model) -> list[str]:
    return sorted(n.op_type for n in model.graph if n.domain == "com.microsoft")


class TestFusePass:
    @pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
    def test_attention_fused_with_each_layers_head_count(self, tiny_export, ort_logits, model_type):
        export = tiny_export(model_type)
        plan = export.plan()
        plan.layers[0].attention.heads_kept = [0, 2, 3]
        plan.layers[1].attention.heads_kept = [1]
        model, (prune,) = export.run_passes(plan, PruneHeadsPass)
        fuse = FusePass(prune.structure)
        fuse(model)
        assert fuse.attention_heads == [3, 1]
        heads = [n.attributes["num_heads"].as_int() for n in model.graph if n.op_type == "Attention"]
        assert heads == [3, 1]
        assert _fused(model).count("SkipLayerNormalization") >= 4 and _fused(model).count("BiasGelu") == 2
        np.testing.assert_allclose(ort_logits(model, export.inputs()), export.reference_logits(plan), atol=1e-4)

    def test_removed_blocks_and_sign_matching_survive_fusion(self, tiny_export, ort_logits):
        export = tiny_export("bert")
        plan = export.plan()
        plan.layers[0].ffn.remove = True
        plan.layers[1].attention.sign_match_top_k = 2
        model, passes = export.run_passes(plan, RemoveBlocksPass, SignMatchPass)
        fuse = FusePass(passes[0].structure)
        fuse(model)
        assert fuse.attention_heads == [4]  # layer 0 fused; layer 1 keeps its SignMatchAttention
        assert [n.op_type for n in model.graph].count(OP_TYPE) == 1
        assert any(f.name == OP_TYPE for f in model.functions.values())
        CleanupPass(fold=False)(model)
        np.testing.assert_allclose(ort_logits(model, export.inputs()), export.reference_logits(plan), atol=1e-4)

    @pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
    def test_torchscript_exports_fuse_to_multi_head_attention(self, tiny_export, ort_logits, model_type):
        export = tiny_export(model_type, "torchscript")
        plan = export.plan()
        plan.layers[1].attention.heads_kept = [0, 1, 3]
        model, (prune,) = export.run_passes(plan, PruneHeadsPass)
        fuse = FusePass(prune.structure)
        fuse(model)
        assert fuse.attention_heads == [4, 3]
        assert _fused(model).count("MultiHeadAttention") == 2 and "BiasGelu" in _fused(model)
        np.testing.assert_allclose(ort_logits(model, export.inputs()), export.reference_logits(plan), atol=1e-4)
