"""The Markdown report of an approximation: metrics before and after, size and work, and what changed where."""

from __future__ import annotations

from typing import Any

from onnx_approx.architectures import MATRIX_ROLES
from onnx_approx.costs import DEFAULT_SEQ_LEN, encoder_bytes, encoder_parameters, macs_per_token, table_bytes
from onnx_approx.plan import Plan


def _metric_cells(metrics: dict[str, Any] | None, names: list[str]) -> list[str]:
    return [f"{metrics[n]:.4f}" if metrics and n in metrics else "n/a" for n in names]


def _layer_rows(plan: Plan) -> list[str]:
    rows = ["| layer | attention | heads kept | top-K | FFN neurons kept | quantized |", "|---:|---|---|---:|---:|---|"]
    for i, lp in enumerate(plan.layers):
        heads = plan.kept_heads(i)
        attention = "removed" if lp.attention.remove else f"{len(heads)}/{plan.num_heads}"
        kept = "all" if lp.attention.heads_kept is None and not lp.attention.remove else (
            "-" if lp.attention.remove else ", ".join(map(str, heads)))
        ffn = "removed" if lp.ffn.remove else f"{len(plan.kept_neurons(i))}/{plan.intermediate_size}"
        quantized = ", ".join(f"{role} {lp.precision_of(role)}" for role in MATRIX_ROLES
                              if lp.precision_of(role) != "fp32") or "-"
        rows.append(f"| {i} | {attention} | {kept} | {lp.attention.sign_match_top_k or '-'} | {ffn} | {quantized} |")
    return rows


TABLE_NAMES = {"word": "word embeddings", "position": "position embeddings", "head": "head projection"}


def _table_lines(plan: Plan, tables: dict[str, tuple[int, int]]) -> list[str]:
    """The tables outside the encoder the plan quantizes, as one sentence (nothing when all stay fp32)."""
    quantized = [f"{TABLE_NAMES[t]} {plan.table_precision(t)}" for t in tables if plan.table_precision(t) != "fp32"]
    return [f"Outside the encoder: {', '.join(quantized)}.", ""] if quantized else []


def _vocabulary_rows(vocabulary: dict[str, Any] | None) -> list[str]:
    """The word-embedding rows a pruned vocabulary keeps, and how much of dev it reads as [UNK]."""
    if vocabulary is None:
        return []
    kept, total, unknown = vocabulary["kept"], vocabulary["total"], vocabulary["dev_unknown"]
    dev = "" if unknown is None else f" (training examples' tokens; {unknown:.2%} of dev tokens read as [UNK])"
    return [f"| vocabulary{dev} | {total:,} | {kept:,} | {kept / total - 1:+.1%} |"]


def report_markdown(plan: Plan, info: dict[str, Any]) -> str:
    """`info`: model, task, main_metric, validation (source line), bound (text), parameters {baseline,
    approximated}, stages {name: {split: metrics}}, search {trials, seconds, rounds}, recovery [summaries],
    tables (`significance.precision.table_shapes` of the model), optionally vocabulary {kept, total,
    dev_unknown}."""
    identity = Plan.identity(plan.model_type, {"num_layers": plan.num_layers, "num_heads": plan.num_heads,
                                               "head_dim": plan.head_dim, "intermediate_size": plan.intermediate_size})
    base_macs, macs = macs_per_token(identity, DEFAULT_SEQ_LEN), macs_per_token(plan, DEFAULT_SEQ_LEN)
    tables = info["tables"]
    base_tables, plan_tables = table_bytes(identity, tables), table_bytes(plan, tables)
    metric = info["main_metric"]
    others = sorted({k for stage in info["stages"].values() for m in stage.values() if m for k in m} - {metric})
    names = [metric, *others]
    lines = [
        f"# Approximation report: {info['model']} on {info['task']}", "",
        f"{f'Goal **{plan.goal}**' if plan.goal else 'No goal'}{info.get('bound', '')}. "
        f"Validation: {info['validation']}.", "",
        "## Metrics", "",
        "| model | split | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names),
    ]
    for stage, splits in info["stages"].items():
        for split, metrics in splits.items():
            if metrics is not None:
                lines.append(f"| {stage} | {split} | " + " | ".join(_metric_cells(metrics, names)) + " |")
    lines += [
        "", "## Size and work", "",
        "| | baseline | approximated | change |", "|---|---:|---:|---:|",
        f"| parameters (whole model) | {info['parameters']['baseline']:,} | {info['parameters']['approximated']:,} | "
        f"{info['parameters']['approximated'] / info['parameters']['baseline'] - 1:+.1%} |",
        f"| encoder parameters | {encoder_parameters(identity):,} | {encoder_parameters(plan):,} | "
        f"{encoder_parameters(plan) / encoder_parameters(identity) - 1:+.1%} |",
        f"| encoder weight bytes (with precision) | {encoder_bytes(identity):,} | {encoder_bytes(plan):,} | "
        f"{encoder_bytes(plan) / encoder_bytes(identity) - 1:+.1%} |",
        f"| embedding tables + head projection bytes (with precision) | {base_tables:,} | {plan_tables:,} | "
        f"{plan_tables / base_tables - 1:+.1%} |",
        f"| encoder MACs per token at sequence {DEFAULT_SEQ_LEN} | {base_macs:,} | {macs:,} | {macs / base_macs - 1:+.1%} |",
        *_vocabulary_rows(info.get("vocabulary")),
        "", "## What changed where", "",
        *_layer_rows(plan), "",
        *_table_lines(plan, tables),
        f"Search: {info['search']['trials']} trials in {info['search']['seconds']:.0f} s"
        + (f" over {info['search']['rounds']} rounds of search and recovery." if info["search"]["rounds"] > 1 else "."),
    ]
    for r in info["recovery"]:
        lines.append(f"Recovery: {r['steps']} steps ({r['epochs']} epochs) from {r['start_from']} in {r['seconds']:.0f} s, "
                     f"final training loss {r['train_loss']:.4f}.")
    if not info["recovery"]:
        lines.append("Recovery: none.")
    return "\n".join(lines) + "\n"
