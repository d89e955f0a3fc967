import copy

import numpy as np
import onnx_ir as ir
import pytest
import torch

from graph_passes import PruneVocabPass, QuantizeWeightsPass
from graph_passes import prune_vocab
from onnx_approx.plan import PlanError
from onnx_approx.significance.precision import apply_precision

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
KEPT = [0, 1, 2, 3, 4, *range(5, 100, 3)]  # the inputs draw ids from 5..99: two thirds of them are not kept


def vocab_plan(export, kept=KEPT, precision="fp32"):
    plan = export.plan()
    plan.embeddings = {"precision": precision, "vocab_kept": list(kept), "special_tokens": SPECIAL}
    return plan


def unk_reference(export, plan) -> np.ndarray:
    """The unpruned PyTorch model (with the plan's precision) fed ids where every token not kept is [UNK]."""
    model = apply_precision(copy.deepcopy(export.torch_model), plan)
    feeds = {k: torch.from_numpy(v) for k, v in export.inputs().items()}
    ids = feeds["input_ids"]
    feeds["input_ids"] = torch.where(torch.isin(ids, torch.tensor(plan.vocab_kept)), ids, torch.ones_like(ids))
    with torch.no_grad():
        return model(**feeds).logits.numpy()


def word_table(model: ir.Model) -> ir.Value:
    gather = next(n for n in model.graph if n.op_type in ("Gather", "GatherBlockQuantized")
                  and n.inputs[0].const_value is not None and n.inputs[0].shape[0] == len(KEPT))
    return gather.inputs[0]


class TestPruneVocabPass:
    @pytest.mark.parametrize(("model_type", "exporter"), [("bert", "dynamo"), ("distilbert", "torchscript"),
                                                          ("roberta", "dynamo")])
    def test_tokens_not_kept_read_as_unk(self, tiny_export, ort_logits, model_type, exporter):
        export = tiny_export(model_type, exporter)
        plan = vocab_plan(export)
        model, (pass_,) = export.run_passes(plan, PruneVocabPass)
        expected = unk_reference(export, plan)
        assert np.abs(expected - ort_logits(export.onnx_path, export.inputs())).max() > 1e-2
        np.testing.assert_allclose(ort_logits(model, export.inputs()), expected, atol=1e-5)
        assert [v.name for v in model.graph.inputs] == [v.name for v in export.load().graph.inputs]
        assert word_table(model).shape[0] == len(KEPT)
        lookups = [v for v in model.graph.initializers.values() if v.const_value.dtype == ir.DataType.UINT16]
        assert len(lookups) == 1 and lookups[0].shape == (export.torch_model.config.vocab_size,)
        assert pass_.changes == [f"word embeddings: {len(KEPT)} of 128 tokens kept, the others read as [UNK] (id 1)"]

    def test_quantized_table_holds_the_kept_rows_only(self, tiny_export, ort_logits):
        export = tiny_export("bert")
        plan = vocab_plan(export, precision="int4")
        model, _ = export.run_passes(plan, PruneVocabPass, QuantizeWeightsPass)
        table = word_table(model)
        assert table.const_value.dtype == ir.DataType.INT4 and table.shape == (len(KEPT), 32)
        np.testing.assert_allclose(ort_logits(model, export.inputs()), unk_reference(export, plan), atol=1e-5)

    def test_wide_vocabularies_use_an_int32_lookup(self, tiny_export, ort_logits, monkeypatch):
        monkeypatch.setattr(prune_vocab, "UINT16_ROWS", 8)
        export = tiny_export("bert")
        plan = vocab_plan(export)
        model, _ = export.run_passes(plan, PruneVocabPass)
        assert not any(v.const_value.dtype == ir.DataType.UINT16 for v in model.graph.initializers.values())
        np.testing.assert_allclose(ort_logits(model, export.inputs()), unk_reference(export, plan), atol=1e-5)

    def test_all_tokens_kept_changes_nothing(self, tiny_export):
        export = tiny_export("bert")
        _, (pass_,) = export.run_passes(export.plan(), PruneVocabPass)
        assert pass_.changes == []

    def test_token_beyond_the_table_names_the_field(self, tiny_export):
        export = tiny_export("bert")
        with pytest.raises(PlanError, match=r"embeddings\.vocab_kept: token id 200 out of range 0\.\.127"):
            export.run_passes(vocab_plan(export, kept=[0, 1, 2, 3, 4, 200]), PruneVocabPass)
