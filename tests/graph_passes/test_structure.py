import numpy as np
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from graph_passes.structure import StructureError, locate
from onnx_approx.architectures import MATRIX_ROLES, spec_for

EXPORTERS = ("dynamo", "torchscript")


def _assert_roles_match_torch(structure, export):
    """Each located projection holds exactly the PyTorch weight and bias of its (layer, role)."""
    spec = spec_for(export.model_type)
    base = getattr(export.torch_model, export.torch_model.base_model_prefix)
    for layer, module in zip(structure.layers, base.get_submodule(spec.layers), strict=True):
        for role in MATRIX_ROLES:
            linear = module.get_submodule(spec.matrices[role])
            located = layer.linear(role)
            np.testing.assert_array_equal(located.weight_array(), linear.weight.detach().numpy().T, err_msg=role)
            np.testing.assert_array_equal(located.bias_array(), linear.bias.detach().numpy(), err_msg=role)


def _strip_names(model: ir.Model) -> None:
    for i, node in enumerate(model.graph):
        node.metadata_props.clear()
        node.name = f"n{i}"


class TestLocate:
    @pytest.mark.parametrize("exporter", EXPORTERS)
    @pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
    def test_module_paths_find_every_projection(self, tiny_export, model_type, exporter):
        export = tiny_export(model_type, exporter)
        structure = locate(export.load(), model_type)
        assert structure.located_by == "module paths"
        dims = export.dims
        assert structure.dims() == {**{k: dims[k] for k in ("num_layers", "num_heads", "head_dim",
                                                          "intermediate_size", "hidden_size")}}
        _assert_roles_match_torch(structure, export)
        for layer in structure.layers:
            attention = layer.attention
            assert attention.scale == pytest.approx(1 / np.sqrt(dims["head_dim"]), rel=1e-6)
            assert attention.layernorm.op_type == "LayerNormalization"
            assert layer.ffn.layernorm.op_type == "LayerNormalization"
        assert structure.word_embeddings.inputs[1].name == "input_ids"

    @pytest.mark.parametrize("exporter", EXPORTERS)
    def test_graph_pattern_without_names(self, tiny_export, exporter):
        export = tiny_export("distilbert", exporter)
        model = export.load()
        _strip_names(model)
        structure = locate(model, "distilbert")
        assert structure.located_by == "graph pattern"
        _assert_roles_match_torch(structure, export)

    def test_opset23_attention_op_is_the_core(self, tiny_export, tmp_path):
        from onnx_approx.export import export_onnx

        export = tiny_export("bert")
        export_onnx(export.torch_model, tmp_path / "m.onnx", opset=23)
        model = ir.load(tmp_path / "m.onnx")
        structure = locate(model, "bert")
        assert [n.op_type for layer in structure.layers for n in layer.attention.core] == ["Attention"] * 2
        _assert_roles_match_torch(structure, export)

    def test_refuses_a_model_fused_by_onnxruntime(self, tiny_export):
        from onnxscript.rewriter.ort_fusions import optimize_for_ort

        model, _ = optimize_for_ort(tiny_export("bert").load())
        with pytest.raises(StructureError, match="already fused by ONNX Runtime.*pass the unfused export"):
            locate(model, "bert")

    def test_unrecognizable_model(self):
        weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "mlp",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weight])
        model = ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
        with pytest.raises(StructureError, match="no encoder layer found"):
            locate(model, "bert")

    def test_unknown_architecture(self, tiny_export):
        with pytest.raises(ValueError, match="not supported; supported: bert, distilbert, roberta"):
            locate(tiny_export("bert").load(), "gpt2")


class TestTablesAndHead:
    @staticmethod
    def _assert_found(structure, export):
        """The located position table and head projection hold the PyTorch module's weights."""
        from onnx_approx.significance.precision import head_dense

        spec = spec_for(export.model_type)
        base = getattr(export.torch_model, export.torch_model.base_model_prefix)
        position = base.get_submodule(spec.position_embeddings).weight.detach().numpy()
        np.testing.assert_array_equal(structure.position_embeddings.inputs[0].const_value.numpy(), position)
        head = structure.head_dense
        weight = head.inputs[1].const_value.numpy()
        transposed = head.op_type == "Gemm" and head.attributes.get_int("transB", 0)
        torch_weight = head_dense(export.torch_model).weight.detach().numpy()
        np.testing.assert_array_equal(weight if transposed else weight.T, torch_weight)

    @pytest.mark.parametrize("exporter", EXPORTERS)
    @pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
    def test_module_paths(self, tiny_export, model_type, exporter):
        export = tiny_export(model_type, exporter)
        self._assert_found(locate(export.load(), model_type), export)

    @pytest.mark.parametrize("model_type", ["bert", "roberta"])
    def test_graph_pattern_without_names(self, tiny_export, model_type):
        export = tiny_export(model_type, "torchscript")
        model = export.load()
        _strip_names(model)
        self._assert_found(locate(model, model_type), export)
