"""Graph passes that realize a plan (plan.json) on an exported BERT-family ONNX model, without PyTorch.

`apply_plan(model, plan)` locates the encoder, removes blocks, prunes heads, FFN neurons and the vocabulary,
substitutes sign-matching attention, cleans up, applies ONNX Runtime fusions and quantizes the matrices the
plan names.
Each step is an onnx_ir pass of its own, usable alone on a located `EncoderStructure`.
"""

from graph_passes.apply import ApplyReport, PassRecord, apply_plan, default_quant_mode
from graph_passes.cleanup import CleanupPass
from graph_passes.fuse import FusePass
from graph_passes.prune_heads import PruneHeadsPass
from graph_passes.prune_neurons import PruneNeuronsPass
from graph_passes.prune_vocab import PruneVocabPass
from graph_passes.quantize import QuantizeWeightsPass
from graph_passes.quantize_dynamic import DynamicQuantizePass
from graph_passes.remove_blocks import RemoveBlocksPass
from graph_passes.sign_match import SignMatchPass
from graph_passes.structure import EncoderStructure, StructureError, locate

__all__ = [
    "ApplyReport",
    "CleanupPass",
    "DynamicQuantizePass",
    "EncoderStructure",
    "FusePass",
    "PassRecord",
    "PruneHeadsPass",
    "PruneNeuronsPass",
    "PruneVocabPass",
    "QuantizeWeightsPass",
    "RemoveBlocksPass",
    "SignMatchPass",
    "StructureError",
    "apply_plan",
    "default_quant_mode",
    "locate",
]
