"""Base of the passes that realize a plan: they edit the model a located `EncoderStructure` describes."""

from __future__ import annotations

import logging

import onnx_ir as ir

from graph_passes.structure import EncoderStructure
from onnx_approx.plan import Plan

log = logging.getLogger(__name__)


class PlanPass(ir.passes.InPlacePass):
    """An in-place pass driven by a plan over a located structure; `changes` lists what it did, one line each."""

    def __init__(self, structure: EncoderStructure, plan: Plan):
        super().__init__()
        self.structure = structure
        self.plan = plan
        self.changes: list[str] = []

    def requires(self, model: ir.Model) -> None:
        if model is not self.structure.model:
            raise ir.passes.PreconditionError(f"{type(self).__name__} runs on the model its structure was located in")

    def note(self, message: str) -> None:
        self.changes.append(message)
        log.debug("%s: %s", type(self).__name__, message)
