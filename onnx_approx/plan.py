"""The plan file: the contract between the PyTorch side (search, pruning) and the ONNX graph passes.

Torch-free on purpose: `graph_passes` reads plans without importing PyTorch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from onnx_approx.architectures import MATRIX_ROLES
from onnx_approx.io_utils import atomic_write_text, read_json

PLAN_FORMAT = 1
PRECISIONS = ("fp32", "int8", "int4")
INT4_BLOCK_SIZE = 32


class PlanError(ValueError):
    """A plan that is malformed or does not fit the model; the message names the field."""


@dataclass
class AttentionPlan:
    remove: bool = False
    heads_kept: list[int] | None = None  # sorted head indices; None = all
    sign_match_top_k: int | None = None


@dataclass
class FFNPlan:
    remove: bool = False
    neurons_kept: list[int] | None = None  # sorted neuron indices; None = all


@dataclass
class LayerPlan:
    index: int
    attention: AttentionPlan = field(default_factory=AttentionPlan)
    ffn: FFNPlan = field(default_factory=FFNPlan)
    precision: dict[str, str] = field(default_factory=dict)  # role -> fp32|int8|int4; missing = fp32

    def precision_of(self, role: str) -> str:
        return self.precision.get(role, "fp32")


@dataclass
class Plan:
    model_type: str
    num_layers: int
    num_heads: int
    head_dim: int
    intermediate_size: int
    layers: list[LayerPlan]
    embeddings: dict[str, Any] = field(default_factory=lambda: {"precision": "fp32"})
    goal: str | None = None
    metrics: dict[str, Any] = field(default_factory=lambda: {"baseline": {}, "approximated": {}})
    format: int = PLAN_FORMAT

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def identity(cls, model_type: str, dims: dict[str, int], goal: str | None = None) -> "Plan":
        """A plan that changes nothing, for a model with the given `ArchitectureSpec.dims`."""
        return cls(
            model_type=model_type,
            num_layers=dims["num_layers"],
            num_heads=dims["num_heads"],
            head_dim=dims["head_dim"],
            intermediate_size=dims["intermediate_size"],
            layers=[LayerPlan(index=i) for i in range(dims["num_layers"])],
            goal=goal,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "plan") -> "Plan":
        if not isinstance(data, dict):
            raise PlanError(f"{source}: top level must be a JSON object")
        if data.get("format") != PLAN_FORMAT:
            raise PlanError(f"{source}: field 'format' must be {PLAN_FORMAT}, got {data.get('format')!r}")
        required = ("model_type", "num_layers", "num_heads", "head_dim", "intermediate_size", "layers")
        for key in required:
            if key not in data:
                raise PlanError(f"{source}: missing field {key!r}")
        layers = []
        for pos, raw in enumerate(data["layers"]):
            where = f"{source}: layers[{pos}]"
            if not isinstance(raw, dict) or "index" not in raw:
                raise PlanError(f"{where}: must be an object with an 'index'")
            try:
                layers.append(
                    LayerPlan(
                        index=raw["index"],
                        attention=AttentionPlan(**raw.get("attention", {})),
                        ffn=FFNPlan(**raw.get("ffn", {})),
                        precision=dict(raw.get("precision", {})),
                    )
                )
            except TypeError as exc:  # unknown key inside attention/ffn
                raise PlanError(f"{where}: {exc}") from None
        plan = cls(
            model_type=data["model_type"],
            num_layers=data["num_layers"],
            num_heads=data["num_heads"],
            head_dim=data["head_dim"],
            intermediate_size=data["intermediate_size"],
            layers=layers,
            embeddings=dict(data.get("embeddings", {"precision": "fp32"})),
            goal=data.get("goal"),
            metrics=dict(data.get("metrics", {"baseline": {}, "approximated": {}})),
        )
        plan.validate(source)
        return plan

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        return cls.from_dict(read_json(path, PlanError), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data = {"format": data.pop("format"), **data}
        return data

    def save(self, path: str | Path) -> None:
        self.validate()
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    # -- validation ---------------------------------------------------------------------------
    def validate(self, source: str = "plan") -> None:
        """Raise PlanError naming the first field that is inconsistent."""
        if self.num_layers < 1 or self.num_heads < 1 or self.head_dim < 1 or self.intermediate_size < 1:
            raise PlanError(f"{source}: model dimensions must be positive")
        if len(self.layers) != self.num_layers:
            raise PlanError(f"{source}: 'layers' has {len(self.layers)} entries but num_layers is {self.num_layers}")
        for pos, layer in enumerate(self.layers):
            where = f"{source}: layers[{pos}]"
            if layer.index != pos:
                raise PlanError(f"{where}.index is {layer.index}, expected {pos} (layers must be in order)")
            _check_indices(layer.attention.heads_kept, self.num_heads, f"{where}.attention.heads_kept")
            _check_indices(layer.ffn.neurons_kept, self.intermediate_size, f"{where}.ffn.neurons_kept")
            k = layer.attention.sign_match_top_k
            if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
                raise PlanError(f"{where}.attention.sign_match_top_k must be null or an integer >= 1, got {k!r}")
            for role, precision in layer.precision.items():
                if role not in MATRIX_ROLES:
                    raise PlanError(f"{where}.precision: unknown matrix {role!r}; known: {', '.join(MATRIX_ROLES)}")
                if precision not in PRECISIONS:
                    raise PlanError(
                        f"{where}.precision[{role!r}]: unknown precision {precision!r}; known: {', '.join(PRECISIONS)}"
                    )
        emb = self.embeddings.get("precision", "fp32")
        if emb not in PRECISIONS:
            raise PlanError(f"{source}: embeddings.precision: unknown precision {emb!r}")

    def check_fits(self, model_type: str, dims: dict[str, int], source: str = "plan") -> None:
        """Raise PlanError if this plan was made for a model of another type or shape."""
        if self.model_type != model_type:
            raise PlanError(f"{source}: made for model_type {self.model_type!r}, the model is {model_type!r}")
        for key in ("num_layers", "num_heads", "head_dim", "intermediate_size"):
            if getattr(self, key) != dims[key]:
                raise PlanError(
                    f"{source}: made for a model with {key}={getattr(self, key)}, the model has {key}={dims[key]}"
                )

    # -- queries ------------------------------------------------------------------------------
    def kept_heads(self, layer: int) -> list[int]:
        lp = self.layers[layer]
        if lp.attention.remove:
            return []
        return list(range(self.num_heads)) if lp.attention.heads_kept is None else list(lp.attention.heads_kept)

    def kept_neurons(self, layer: int) -> list[int]:
        lp = self.layers[layer]
        if lp.ffn.remove:
            return []
        return list(range(self.intermediate_size)) if lp.ffn.neurons_kept is None else list(lp.ffn.neurons_kept)

    def is_identity(self) -> bool:
        return all(
            not lp.attention.remove
            and lp.attention.heads_kept is None
            and lp.attention.sign_match_top_k is None
            and not lp.ffn.remove
            and lp.ffn.neurons_kept is None
            and all(p == "fp32" for p in lp.precision.values())
            for lp in self.layers
        ) and self.embeddings.get("precision", "fp32") == "fp32"

    def summary(self) -> dict[str, Any]:
        """What the plan removes, keeps and quantizes, as counts a person reads at a glance (JSON-ready)."""
        precision_counts: dict[str, int] = {}
        for lp in self.layers:
            for role in MATRIX_ROLES:
                p = lp.precision_of(role)
                precision_counts[p] = precision_counts.get(p, 0) + 1
        return {
            "goal": self.goal,
            "model_type": self.model_type,
            "num_layers": self.num_layers,
            "attention_blocks_removed": sum(lp.attention.remove for lp in self.layers),
            "ffn_blocks_removed": sum(lp.ffn.remove for lp in self.layers),
            "heads_kept": sum(len(self.kept_heads(i)) for i in range(self.num_layers)),
            "heads_total": self.num_layers * self.num_heads,
            "neurons_kept": sum(len(self.kept_neurons(i)) for i in range(self.num_layers)),
            "neurons_total": self.num_layers * self.intermediate_size,
            "sign_match_layers": [lp.index for lp in self.layers if lp.attention.sign_match_top_k is not None],
            "matrix_precision": precision_counts,
            "embeddings_precision": self.embeddings.get("precision", "fp32"),
            "metrics": self.metrics,
        }


def _check_indices(indices: list[int] | None, limit: int, where: str) -> None:
    if indices is None:
        return
    if not isinstance(indices, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise PlanError(f"{where} must be null or a list of integers")
    if not indices:
        raise PlanError(f"{where} is empty: remove the block instead (remove: true)")
    if indices != sorted(set(indices)):
        raise PlanError(f"{where} must be sorted and without repeats")
    bad = [i for i in indices if not 0 <= i < limit]
    if bad:
        raise PlanError(f"{where}: index {bad[0]} out of range 0..{limit - 1}")
