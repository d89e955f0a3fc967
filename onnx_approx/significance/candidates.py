"""Single approximations as plan edits: remove a block, head or neuron group; quantize a matrix, an embedding
table or the task head's projection; top-K attention.

The analysis measures each candidate alone against the unchanged model; the search applies them one after
another. Both express a candidate as "this plan, plus one edit", so every measurement is of a valid plan.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from onnx_approx.plan import Plan
from onnx_approx.significance.gates import Component, GateLayout

REMOVALS = ("attention", "head", "ffn", "group")


@dataclass(frozen=True)
class Candidate:
    """kind: a removal (attention/head/ffn/group), "precision" (role + value int8/int4), "top_k" (value K) or
    "table" (role word/position/head of `plan.TABLE_PRECISION_FIELDS` + value int8/int4; layer: the first
    layer it changes the input of, 0 for the embeddings, the last one for the head)."""

    kind: str
    layer: int
    index: int | None = None
    role: str | None = None
    value: str | int | None = None

    @classmethod
    def removal(cls, component: Component) -> "Candidate":
        return cls(component.kind, component.layer, component.index)

    @property
    def component(self) -> Component:
        if self.kind not in REMOVALS:
            raise ValueError(f"{self.name} is not a removal")
        return Component(self.kind, self.layer, self.index)

    @property
    def name(self) -> str:
        if self.kind == "precision":
            return f"L{self.layer}.{self.role}@{self.value}"
        if self.kind == "top_k":
            return f"L{self.layer}.top{self.value}"
        if self.kind == "table":
            return f"{'head' if self.role == 'head' else 'embeddings.' + self.role}@{self.value}"
        return self.component.name

    def applies_to(self, plan: Plan, layout: GateLayout) -> bool:
        """Whether the edit would change `plan` (False e.g. for a head of an already removed block)."""
        if self.kind == "table":
            return plan.table_precision(self.role) != self.value
        lp = plan.layers[self.layer]
        if self.kind == "attention":
            return not lp.attention.remove
        if self.kind == "head":
            return self.index in plan.kept_heads(self.layer)
        if self.kind == "ffn":
            return not lp.ffn.remove
        if self.kind == "group":
            return bool(set(layout.group_neurons(self.index)) & set(plan.kept_neurons(self.layer)))
        if self.kind == "top_k":
            return not lp.attention.remove and lp.attention.sign_match_top_k != self.value
        block_removed = lp.attention.remove if self.role.startswith("attention.") else lp.ffn.remove
        return not block_removed and lp.precision_of(self.role) != self.value

    def apply(self, plan: Plan, layout: GateLayout) -> Plan:
        """A copy of `plan` with this edit made."""
        new = copy.deepcopy(plan)
        lp = new.layers[self.layer]
        if self.kind == "attention" or (self.kind == "head" and plan.kept_heads(self.layer) == [self.index]):
            lp.attention.remove, lp.attention.heads_kept, lp.attention.sign_match_top_k = True, None, None
        elif self.kind == "head":
            lp.attention.heads_kept = [h for h in plan.kept_heads(self.layer) if h != self.index]
        elif self.kind in ("ffn", "group"):
            gone = set(layout.group_neurons(self.index)) if self.kind == "group" else set(range(plan.intermediate_size))
            kept = [n for n in plan.kept_neurons(self.layer) if n not in gone]
            lp.ffn.remove, lp.ffn.neurons_kept = (False, kept) if kept else (True, None)
        elif self.kind == "precision":
            lp.precision[self.role] = self.value
        elif self.kind == "table":
            new.set_table_precision(self.role, self.value)
        else:
            lp.attention.sign_match_top_k = self.value
        return new


@dataclass(frozen=True)
class Bundle:
    """Several candidates tried as one change (e.g. int8 for a whole set of matrices at once); members may be
    bundles themselves (e.g. a layer's Q, K and V among the matrices of a bisection slice)."""

    name: str
    members: tuple[Candidate | Bundle, ...]
    kind: str = "bundle"

    @property
    def layer(self) -> int:
        """The lowest layer it changes: measurements rerun from there."""
        return min(m.layer for m in self.members)

    def applies_to(self, plan: Plan, layout: GateLayout) -> bool:
        return any(m.applies_to(plan, layout) for m in self.members)

    def apply(self, plan: Plan, layout: GateLayout) -> Plan:
        for member in self.members:
            if member.applies_to(plan, layout):
                plan = member.apply(plan, layout)
        return plan


def single_candidates(unit: Candidate | Bundle) -> tuple[Candidate, ...]:
    """The single candidates `unit` is made of: itself, or a bundle's members with nested bundles flattened."""
    if isinstance(unit, Candidate):
        return (unit,)
    return tuple(c for member in unit.members for c in single_candidates(member))
