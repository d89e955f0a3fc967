"""Export a model folder to ONNX (dynamo exporter), in the layout optimum's ORTModel loads.

Example:
  onnx-approx export --model runs/sst2 --out runs/sst2-onnx

OUT receives model.onnx (inputs input_ids, attention_mask[, token_type_ids]; output logits, or
start_logits/end_logits for QA; dynamic batch and sequence axes), config.json and tokenizer files.
"""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "export a PyTorch model folder to ONNX"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="fine-tuned model folder (or alias)")
    parser.add_argument("--out", required=True, help="output folder (refused if it exists, unless --overwrite)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset, >= 18 (default: the exporter's, 18)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def run(args: argparse.Namespace) -> int:
    from onnx_approx.export import DEFAULT_OPSET, export_folder

    opset = args.opset or DEFAULT_OPSET
    if opset < 18:
        raise ValueError(f"--opset must be >= 18, got {opset}")
    path = export_folder(args.model, args.out, overwrite=args.overwrite, opset=opset)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
