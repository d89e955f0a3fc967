import numpy as np
import pytest

from graph_passes import PruneNeuronsPass, locate


class TestPruneNeuronsPass:
    @pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
    @pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
    def test_ffn_keeps_chosen_neurons(self, tiny_export, ort_logits, model_type, exporter):
        export = tiny_export(model_type, exporter)
        plan = export.plan()
        plan.layers[0].ffn.neurons_kept = list(range(0, 48, 3))
        plan.layers[1].ffn.neurons_kept = [5, 7, 40]
        model, (pass_,) = export.run_passes(plan, PruneNeuronsPass)
        expected = export.reference_logits(plan)
        assert np.abs(expected - export.reference_logits()).max() > 1e-2
        np.testing.assert_allclose(ort_logits(model, export.inputs()), expected, atol=1e-4)
        assert pass_.changes == ["layer 0: 48 -> 16 FFN neurons", "layer 1: 48 -> 3 FFN neurons"]
        structure = locate(model, model_type)  # the pruned graph still reads as an encoder
        assert [layer.ffn.output.weight_array().shape for layer in structure.layers] == [(16, 32), (3, 32)]
