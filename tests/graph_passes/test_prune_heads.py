import numpy as np
import onnx_ir as ir
import pytest

from graph_passes import PruneHeadsPass, locate
from graph_passes.structure import shape_elements


class TestPruneHeadsPass:
    @pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
    @pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
    def test_layers_keep_different_heads(self, tiny_export, ort_logits, model_type, exporter):
        export = tiny_export(model_type, exporter)
        plan = export.plan()
        plan.layers[0].attention.heads_kept = [1, 3]
        plan.layers[1].attention.heads_kept = [2]
        model, (pass_,) = export.run_passes(plan, PruneHeadsPass)
        expected = export.reference_logits(plan)
        assert np.abs(expected - export.reference_logits()).max() > 1e-2
        np.testing.assert_allclose(ort_logits(model, export.inputs()), expected, atol=1e-4)
        assert pass_.changes == ["layer 0: 4 -> 2 heads (kept [1, 3])", "layer 1: 4 -> 1 heads (kept [2])"]
        structure = pass_.structure
        assert [layer.attention.num_heads for layer in structure.layers] == [2, 1]
        assert [layer.attention.query.weight_array().shape for layer in structure.layers] == [(32, 16), (32, 8)]

    def test_head_count_constants_in_reshape_targets(self, tiny_export, ort_logits):
        """Exports of older transformers write [B, S, heads, head_dim] and [B, S, hidden] as constants."""
        export = tiny_export("bert", "torchscript")
        model = export.load()
        structure = locate(model, "bert")
        for layer in structure.layers:  # turn the -1 entries into the explicit constants
            for node, value in [*((s, 4) for s in layer.attention.splits.values()), (layer.attention.merge, 32)]:
                concat = node.inputs[1].producer()
                inputs = list(concat.inputs)
                index = next(i for i, v in enumerate(inputs) if ir.convenience.get_const_tensor(v) is not None
                             and ir.convenience.get_const_tensor(v).numpy().tolist() == [-1])
                constant = ir.Value(name=f"{node.name}_legacy", const_value=ir.tensor(np.array([value])))
                model.graph.register_initializer(constant)
                concat.replace_input_with(index, constant)
        assert shape_elements(structure.layers[0].attention.splits["attention.query"].inputs[1])[2:] == [4, 8]
        plan = export.plan()
        plan.layers[0].attention.heads_kept = [0, 2, 3]
        PruneHeadsPass(structure, plan)(model)
        attention = structure.layers[0].attention
        for split in attention.splits.values():
            assert shape_elements(split.inputs[1])[2:] == [3, 8]
        assert shape_elements(attention.merge.inputs[1])[2] == 24
        assert shape_elements(structure.layers[1].attention.merge.inputs[1])[2] == 32  # the other layer's own
        np.testing.assert_allclose(ort_logits(model, export.inputs()), export.reference_logits(plan), atol=1e-4)

    def test_shared_initializers_stay_intact(self, tiny_export, ort_logits):
        export = tiny_export("bert", perturbed=False)  # zero biases, stored once for all layers
        model = export.load()
        structure = locate(model, "bert")
        shared = structure.layers[0].attention.query.bias
        assert len(shared.uses()) > 3
        plan = export.plan()
        plan.layers[0].attention.heads_kept = [3]
        PruneHeadsPass(structure, plan)(model)
        assert shared.const_value.shape == (32,) and shared in structure.layers[1].attention.query.bias_add.inputs
        np.testing.assert_allclose(ort_logits(model, export.inputs()), export.reference_logits(plan), atol=1e-4)

    def test_all_heads_kept_changes_nothing(self, tiny_export):
        export = tiny_export("roberta")
        plan = export.plan()
        plan.layers[0].attention.heads_kept = [0, 1, 2, 3]
        model = export.load()
        result = PruneHeadsPass(locate(model, "roberta"), plan)(model)
        assert not result.modified
