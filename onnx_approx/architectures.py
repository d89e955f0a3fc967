"""Declarative per-architecture table: where each encoder keeps its layers, attention, FFN and norms.

Everything that walks a model (gates, pruning, export naming, graph-pass location) reads module
paths from here instead of hard-coding BERT names. Torch-free, so the graph passes can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

# Architecture-neutral names of the weight matrices of one encoder layer, as used in plan files.
MATRIX_ROLES: tuple[str, ...] = (
    "attention.query",
    "attention.key",
    "attention.value",
    "attention.output",
    "ffn.intermediate",
    "ffn.output",
)


@dataclass(frozen=True)
class ArchitectureSpec:
    """Module paths (dotted, relative to the bare encoder model) and config field names of one family."""

    model_type: str
    layers: str  # ModuleList of encoder layers, relative to the base model
    embeddings: str
    matrices: dict[str, str]  # role -> Linear path inside one layer
    attention_layernorm: str  # LayerNorm after the attention residual, inside one layer
    ffn_layernorm: str  # LayerNorm after the FFN residual, inside one layer
    num_layers_field: str
    num_heads_field: str
    hidden_size_field: str
    intermediate_size_field: str
    uses_token_type_ids: bool
    # Position-embedding table, relative to the base model.
    position_embeddings: str = "embeddings.position_embeddings"
    # The task head's hidden x hidden projection, relative to the task model (absent in QA/token heads).
    head_dense: str | None = None

    def dims(self, config: Any) -> dict[str, int]:
        """num_layers, num_heads, hidden_size, head_dim and intermediate_size read from an HF config."""
        get = config.get if isinstance(config, dict) else lambda k: getattr(config, k)
        hidden = int(get(self.hidden_size_field))
        heads = int(get(self.num_heads_field))
        return {
            "num_layers": int(get(self.num_layers_field)),
            "num_heads": heads,
            "hidden_size": hidden,
            "head_dim": hidden // heads,
            "intermediate_size": int(get(self.intermediate_size_field)),
        }


_BERT_LIKE_MATRICES = {
    "attention.query": "attention.self.query",
    "attention.key": "attention.self.key",
    "attention.value": "attention.self.value",
    "attention.output": "attention.output.dense",
    "ffn.intermediate": "intermediate.dense",
    "ffn.output": "output.dense",
}

_BERT = ArchitectureSpec(
    model_type="bert",
    layers="encoder.layer",
    embeddings="embeddings",
    matrices=_BERT_LIKE_MATRICES,
    attention_layernorm="attention.output.LayerNorm",
    ffn_layernorm="output.LayerNorm",
    num_layers_field="num_hidden_layers",
    num_heads_field="num_attention_heads",
    hidden_size_field="hidden_size",
    intermediate_size_field="intermediate_size",
    uses_token_type_ids=True,
    head_dense="bert.pooler.dense",
)

ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "bert": _BERT,
    # RoBERTa keeps BERT's module tree; its single token type is left out of the model inputs.
    "roberta": replace(_BERT, model_type="roberta", uses_token_type_ids=False, head_dense="classifier.dense"),
    "distilbert": ArchitectureSpec(
        model_type="distilbert",
        layers="transformer.layer",
        embeddings="embeddings",
        matrices={
            "attention.query": "attention.q_lin",
            "attention.key": "attention.k_lin",
            "attention.value": "attention.v_lin",
            "attention.output": "attention.out_lin",
            "ffn.intermediate": "ffn.lin1",
            "ffn.output": "ffn.lin2",
        },
        attention_layernorm="sa_layer_norm",
        ffn_layernorm="output_layer_norm",
        num_layers_field="n_layers",
        num_heads_field="n_heads",
        hidden_size_field="dim",
        intermediate_size_field="hidden_dim",
        uses_token_type_ids=False,
        head_dense="pre_classifier",
    ),
}


class UnsupportedArchitectureError(ValueError):
    pass


def spec_for(model_type: str) -> ArchitectureSpec:
    """The table entry for an HF `model_type`; a clear error listing what is supported otherwise."""
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise UnsupportedArchitectureError(
            f"model_type {model_type!r} is not supported; supported: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
