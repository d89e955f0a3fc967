import numpy as np
import onnx
import onnx_ir as ir
import pytest

from graph_passes import CleanupPass


class TestCleanupPass:
    def test_removes_dead_nodes_and_initializers(self, tiny_export, ort_logits):
        export = tiny_export("bert", "torchscript")
        model = export.load()
        dead = ir.node("MatMul", [model.graph.inputs[0], model.graph.inputs[0]], name="dead")
        model.graph.append(dead)
        unused = ir.Value(name="unused", const_value=ir.tensor(np.ones((64, 64), np.float32)))
        model.graph.register_initializer(unused)
        layer_norm = next(n for n in model.graph if n.op_type == "LayerNormalization")
        identity = ir.node("Identity", [layer_norm.inputs[1]], name="foldable")
        model.graph.insert_before(layer_norm, identity)
        layer_norm.replace_input_with(1, identity.outputs[0])
        CleanupPass()(model)
        assert dead.graph is None and "unused" not in model.graph.initializers
        assert identity.graph is None and layer_norm.inputs[1].const_value is not None  # folded
        np.testing.assert_allclose(ort_logits(model, export.inputs()), export.reference_logits(), atol=1e-4)

    def test_infers_the_shapes_passes_cleared(self, tiny_export):
        model = tiny_export("distilbert").load()
        layer_norm = next(n for n in model.graph if n.op_type == "LayerNormalization")
        layer_norm.outputs[0].shape = None
        CleanupPass()(model)
        assert layer_norm.outputs[0].shape is not None and layer_norm.outputs[0].shape[2] == 32

    def test_rejects_an_invalid_model(self, tiny_export):
        model = tiny_export("bert").load()
        classifier = model.graph.outputs[0].producer()
        classifier.attributes["transB"] = ir.AttrString("transB", "yes")
        with pytest.raises(onnx.checker.ValidationError, match="Mismatched attribute type"):
            CleanupPass(fold=False)(model)
