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
# `embeddings` fields (all optional): the word-embedding table's precision, the position-embedding table's,
# the token ids kept in the word-embedding table (sorted; null = all; the others read as [UNK]) and the
# tokenizer's special tokens by name ("unk", "pad", "cls", ...), required with `vocab_kept`.
EMBEDDING_FIELDS = ("precision", "position_precision", "vocab_kept", "special_tokens")
# `head` fields: the precision of the task head's hidden x hidden projection (BERT's pooler, DistilBERT's
# pre_classifier, RoBERTa's classifier.dense); the small output projection stays fp32.
HEAD_FIELDS = ("precision",)
# The weights outside the encoder a plan can quantize, by table name: (plan section, precision field).
TABLE_PRECISION_FIELDS = {"word": ("embeddings", "precision"), "position": ("embeddings", "position_precision"),
                          "head": ("head", "precision")}


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
    head: dict[str, Any] = field(default_factory=lambda: {"precision": "fp32"})
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
            embeddings=_object(data.get("embeddings", {"precision": "fp32"}), f"{source}: embeddings"),
            head=_object(data.get("head", {"precision": "fp32"}), f"{source}: head"),
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
        self._validate_embeddings(source)
        _check_fields(self.head, HEAD_FIELDS, f"{source}: head")
        _check_precision(self.head_precision, f"{source}: head.precision")

    def _validate_embeddings(self, source: str) -> None:
        where = f"{source}: embeddings"
        _check_fields(self.embeddings, EMBEDDING_FIELDS, where)
        _check_precision(self.embedding_precision("word"), f"{where}.precision")
        _check_precision(self.embedding_precision("position"), f"{where}.position_precision")
        kept, special = self.vocab_kept, self.embeddings.get("special_tokens")
        if special is not None and (not isinstance(special, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
                for k, v in special.items())):
            raise PlanError(f"{where}.special_tokens must be null or an object of token names to ids >= 0")
        if kept is None:
            return
        if kept == []:
            raise PlanError(f"{where}.vocab_kept is empty: it must keep at least the special tokens")
        _check_indices(kept, None, f"{where}.vocab_kept")
        if not special or "unk" not in special:
            raise PlanError(f"{where}.special_tokens must name the 'unk' token id when vocab_kept is given "
                            "(tokens not kept read as [UNK])")
        members = set(kept)
        for name, token in special.items():
            if token not in members:
                raise PlanError(f"{where}.vocab_kept must keep the special token {name!r} (id {token})")

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
    def table_precision(self, table: str) -> str:
        """Precision of a table of TABLE_PRECISION_FIELDS: "word", "position" (embeddings) or "head"."""
        section, key = TABLE_PRECISION_FIELDS[table]
        return getattr(self, section).get(key) or "fp32"

    def set_table_precision(self, table: str, precision: str) -> None:
        section, key = TABLE_PRECISION_FIELDS[table]
        getattr(self, section)[key] = precision

    def embedding_precision(self, table: str) -> str:
        """Precision of the "word" or "position" embedding table."""
        if table not in ("word", "position"):
            raise KeyError(table)
        return self.table_precision(table)

    @property
    def head_precision(self) -> str:
        return self.table_precision("head")

    @property
    def vocab_kept(self) -> list[int] | None:
        """Token ids the word-embedding table keeps (sorted), None for all."""
        return self.embeddings.get("vocab_kept")

    @property
    def unk_token_id(self) -> int | None:
        """The id every token outside `vocab_kept` reads as."""
        return (self.embeddings.get("special_tokens") or {}).get("unk")

    def vocabulary_rows(self, num_tokens: int) -> list[int] | None:
        """Token id -> row of the pruned word-embedding table (a kept token's rank in `vocab_kept`, any other
        token [UNK]'s), for a model of `num_tokens` tokens; None when every token is kept."""
        kept = self.vocab_kept
        if kept is None:
            return None
        if kept[-1] >= num_tokens:
            raise PlanError(f"embeddings.vocab_kept: token id {kept[-1]} out of range 0..{num_tokens - 1} "
                            "(the model's vocabulary)")
        rank = {token: row for row, token in enumerate(kept)}
        unk = rank[self.unk_token_id]
        return [rank.get(token, unk) for token in range(num_tokens)]

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
        ) and self.embedding_precision("word") == self.embedding_precision("position") == self.head_precision \
            == "fp32" and self.vocab_kept is None

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
            "embeddings_precision": self.embedding_precision("word"),
            "position_embeddings_precision": self.embedding_precision("position"),
            "head_precision": self.head_precision,
            "vocab_kept": None if self.vocab_kept is None else len(self.vocab_kept),
            "metrics": self.metrics,
        }


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PlanError(f"{where} must be a JSON object")
    return dict(value)


def _check_fields(data: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise PlanError(f"{where}: unknown field {unknown[0]!r}; known: {', '.join(known)}")


def _check_precision(precision: str, where: str) -> None:
    if precision not in PRECISIONS:
        raise PlanError(f"{where}: unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")


def _check_indices(indices: list[int] | None, limit: int | None, where: str) -> None:
    """A sorted list of distinct integers in 0..limit-1 (no upper bound with limit None), or None."""
    if indices is None:
        return
    if not isinstance(indices, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise PlanError(f"{where} must be null or a list of integers")
    if not indices:
        raise PlanError(f"{where} is empty: remove the block instead (remove: true)")
    if indices != sorted(set(indices)):
        raise PlanError(f"{where} must be sorted and without repeats")
    bad = [i for i in indices if i < 0 or (limit is not None and i >= limit)]
    if bad:
        raise PlanError(f"{where}: index {bad[0]} out of range 0..{'' if limit is None else limit - 1}")
