"""Clean up after graph edits: dead code, constant folding, fresh shapes, `onnx.checker`."""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes.common import (
    CheckerPass,
    RemoveUnusedFunctionsPass,
    RemoveUnusedNodesPass,
    RemoveUnusedOpsetsPass,
    ShapeInferencePass,
)
from onnxscript.optimizer import fold_constants


class CleanupPass(ir.passes.InPlacePass):
    """Dead nodes, initializers, functions and opsets removed; constants folded; missing shapes inferred; checked.

    The pruning passes clear the shapes they make stale; inference fills them in and keeps the others.

    Constant folding is skipped after quantization (`fold=False`): folding DequantizeLinear would undo it.
    Model-local functions are kept, never inlined.
    """

    def __init__(self, fold: bool = True):
        super().__init__()
        self.fold = fold

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        if self.fold:
            modified = bool(fold_constants(model).modified)
        for cleanup in (RemoveUnusedNodesPass(), RemoveUnusedFunctionsPass(), RemoveUnusedOpsetsPass()):
            modified = cleanup(model).modified or modified
        ShapeInferencePass()(model)
        CheckerPass()(model)
        return ir.passes.PassResult(model, modified=modified)
