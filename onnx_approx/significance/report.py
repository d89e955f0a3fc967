"""Write a significance document: significance.json, a heatmap (layers x components) and a Markdown summary."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from onnx_approx.architectures import MATRIX_ROLES
from onnx_approx.io_utils import atomic_write_bytes, atomic_write_text, read_json

SIGNIFICANCE_FILE = "significance.json"
HEATMAP_FILE = "heatmap.png"
SUMMARY_FILE = "summary.md"
_SHORT_ROLE = {"attention.query": "q", "attention.key": "k", "attention.value": "v", "attention.output": "o",
               "ffn.intermediate": "ffn1", "ffn.output": "ffn2"}


def load_significance(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / SIGNIFICANCE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {SIGNIFICANCE_FILE} in {folder} (run `onnx-approx analyze` first)")
    return read_json(path)


def write_significance(doc: dict[str, Any], folder: Path) -> None:
    folder = Path(folder)
    atomic_write_text(folder / SIGNIFICANCE_FILE, json.dumps(doc, indent=2) + "\n")
    atomic_write_bytes(folder / HEATMAP_FILE, heatmap_png(doc))
    atomic_write_text(folder / SUMMARY_FILE, summary_markdown(doc))


def _column(row: dict[str, Any]) -> str:
    return {"attention": "attn", "ffn": "ffn"}.get(row["kind"], f"{row['kind'][0]}{row['index']}")


def _grid(doc: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """Columns (attn, h0.., ffn, g0.., matrix@precision) and layers x columns of exact loss changes (NaN = not run)."""
    layers = doc["dims"]["num_layers"]
    columns: list[str] = []
    for row in doc["components"]:
        if _column(row) not in columns:
            columns.append(_column(row))
    matrix_columns = [f"{_SHORT_ROLE[role]}@{p}" for p in ("int8", "int4") for role in MATRIX_ROLES]
    grid = np.full((layers, len(columns) + len(matrix_columns)), np.nan)
    for row in doc["components"]:
        if row["loss_change"] is not None:
            grid[row["layer"], columns.index(_column(row))] = row["loss_change"]
    for row in doc["matrices"]:
        for p in ("int8", "int4"):
            col = len(columns) + matrix_columns.index(f"{_SHORT_ROLE[row['role']]}@{p}")
            grid[row["layer"], col] = row[p]["loss_change"]
    return columns + matrix_columns, grid


def heatmap_png(doc: dict[str, Any]) -> bytes:
    """Layers (rows, last on top) x components; colour = validation-loss change when removed / quantized."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns, grid = _grid(doc)
    limit = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    fig, ax = plt.subplots(figsize=(max(8.0, 0.32 * len(columns)), 1.2 + 0.45 * grid.shape[0]))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, vmin=-limit, vmax=limit, origin="lower")
    ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    ax.set_yticks(range(grid.shape[0]), [f"layer {i}" for i in range(grid.shape[0])], fontsize=8)
    ax.set_title(f"validation loss change (baseline {doc['baseline']['loss']:.4f}); grey = not measured", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def summary_markdown(doc: dict[str, Any], top: int = 10) -> str:
    """The numbers a person reads first: baseline, least and most significant parts, what removal helps."""
    base = doc["baseline"]
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in base["metrics"].items())
    lines = [
        "# Significance analysis", "",
        f"Model type {doc['model_type']}, {doc['dims']['num_layers']} layers x {doc['dims']['num_heads']} heads, "
        f"FFN {doc['dims']['intermediate_size']} in groups of {doc['group_size']}; "
        f"{doc['validation_samples']} validation samples; {doc['seconds']:.0f} s.", "",
        f"Baseline validation loss {base['loss']:.4f}; {metrics}.", "",
        "Loss change = validation loss with the component removed (or the matrix quantized) minus the baseline; "
        "no-worse = share of samples whose loss did not rise. First-order = mean |dL/dgate|.", "",
    ]
    measured = [r for r in doc["components"] if r["loss_change"] is not None]
    header = ["| component | loss change | no-worse | first-order | MACs/token |", "|---|---:|---:|---:|---:|"]

    def row(r: dict[str, Any]) -> str:
        return (f"| {r['name']} | {_fmt(r['loss_change'])} | {r['no_worse_fraction']:.3f} | "
                f"{r['first_order']:.4g} | {r['macs_per_token']:,} |")

    helpful = sorted((r for r in measured if r["loss_change"] < 0), key=lambda r: r["loss_change"])
    sections = [
        (f"## {top} least significant (smallest loss change)", sorted(measured, key=lambda r: r["loss_change"])[:top]),
        (f"## {top} most significant", sorted(measured, key=lambda r: -r["loss_change"])[:top]),
        ("## Removals that lower the validation loss", helpful),
    ]
    for title, rows in sections:
        lines += [title, ""] + (header + [row(r) for r in rows] if rows else ["none"]) + [""]
    lines += ["## Quantization (loss change)", "", "| layer | matrix | int8 | int4 |", "|---|---|---:|---:|"]
    lines += [f"| {r['layer']} | {r['role']} | {_fmt(r['int8']['loss_change'])} | {_fmt(r['int4']['loss_change'])} |"
              for r in doc["matrices"]]
    lines += ["", f"Heatmap: {HEATMAP_FILE}; all numbers: {SIGNIFICANCE_FILE}.", ""]
    return "\n".join(lines)
