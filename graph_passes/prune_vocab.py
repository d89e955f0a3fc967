"""Vocabulary pruning: the word-embedding table keeps the rows of the plan's tokens, and input ids are remapped to
them by a small lookup, so the model's inputs and its tokenizer stay as they are.

    input_ids -> Gather(lookup [tokens], uint16 or int32) -> Cast(to the ids' type) -> Gather(table[kept])

The lookup (`Plan.vocabulary_rows`) sends every token not kept to [UNK]'s row, as the PyTorch realization
(`onnx_approx.vocabulary`) reads such tokens as [UNK]. It costs 2 bytes per token of the full vocabulary where
the kept rows are numbered within uint16, else 4. Quantizing the table (`QuantizeWeightsPass`) comes after and
sees the kept rows only; each row is quantized on its own, so the order does not change the numbers.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from graph_passes._ir_utils import add_initializer, constant_array, feed_constant, unique_name
from graph_passes.base import PlanPass
from graph_passes.structure import StructureError

UINT16_ROWS = 1 << 16  # tables of at most this many kept rows are indexed with uint16


class PruneVocabPass(PlanPass):
    """The word-embedding table keeps the rows of `embeddings.vocab_kept`; input ids are remapped to them."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        kept = self.plan.vocab_kept
        if kept is None:
            return ir.passes.PassResult(model, modified=False)
        gather = self.structure.word_embeddings
        if gather is None:
            raise StructureError("embeddings.vocab_kept: the model has no word-embedding Gather reading input_ids")
        graph = model.graph
        table_value, ids = gather.inputs
        table = constant_array(table_value)
        rows = self.plan.vocabulary_rows(table.shape[0])
        name = table_value.name or "word_embeddings"
        lookup = add_initializer(graph, np.asarray(rows, np.uint16 if len(kept) <= UINT16_ROWS else np.int32),
                                 f"{name}_rows")
        remap = ir.node("Gather", [lookup, ids], {"axis": 0}, name=unique_name(graph, f"{name}_remap"))
        remap.outputs[0].name = unique_name(graph, f"{name}_rows_read")
        cast = ir.node("Cast", [remap.outputs[0]], {"to": ids.dtype or ir.DataType.INT64},
                       name=unique_name(graph, f"{name}_rows_cast"))
        cast.outputs[0].name = unique_name(graph, f"{name}_row_ids")
        graph.insert_before(gather, [remap, cast])
        gather.replace_input_with(1, cast.outputs[0])
        shared = len(table_value.uses()) > 1
        feed_constant(gather, 0, table[kept], f"{name}_kept")
        self.note(f"word embeddings: {len(kept)} of {table.shape[0]} tokens kept, the others read as [UNK] "
                  f"(id {self.plan.unk_token_id})" + ("; the full table stays for its other users" if shared else ""))
        return ir.passes.PassResult(model, modified=True)
