"""Realize a plan on an exported ONNX model with graph passes (no PyTorch needed).

Example:
  onnx-approx passes --model runs/sst2-onnx/model.onnx --plan runs/sst2-approx/plan.json --out runs/sst2-final

The model must be the unfused export of the model the plan was made for (`onnx-approx export`, or a
TorchScript/optimum export without ORT optimization). In order, the passes: remove the attention/FFN
blocks the plan removes (the layer keeps LayerNorm(x + output bias)); prune heads and FFN neurons; put
sign-matching attention in the layers that name a `sign_match_top_k`; clean up; fuse for ONNX Runtime
(Attention, SkipLayerNormalization, BiasGelu; skip with --no-fuse); quantize the int8/int4 matrices.
--quant-mode size stores them as int8 / int4-block DequantizeLinear (smallest file); speed runs int8
matrices as ORT's dynamically quantized ops (fastest); the default follows the plan's goal (faster ->
speed). OUT receives model.onnx, plan.json, passes_report.json (what each pass changed) and the
config/tokenizer files found beside the input model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "passes"
HELP = "realize a plan.json on an exported ONNX model (prune, quantize, fuse)"
ONNX_FILE = "model.onnx"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="exported model.onnx, or the folder holding it")
    parser.add_argument("--plan", required=True, help="plan.json (from `onnx-approx approximate` or by hand)")
    parser.add_argument("--out", required=True, help="output folder (refused if it exists, unless --overwrite)")
    parser.add_argument("--no-fuse", action="store_true", help="skip the ONNX Runtime fusions")
    parser.add_argument("--quant-mode", choices=("size", "speed"), default=None,
                        help="layout of quantized matrices (default: speed for goal 'faster', else size)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def _model_file(path: Path) -> Path:
    if path.is_dir():
        path = path / ONNX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    return path


def _bytes_on_disk(model_file: Path) -> int:
    """The model file plus its external-data file, if it has one beside it."""
    data = model_file.with_name(model_file.name + ".data")
    return model_file.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def run(args: argparse.Namespace) -> int:
    from graph_passes.apply import apply_plan_folder
    from onnx_approx.io_utils import check_output_dir
    from onnx_approx.plan import Plan

    model_file = _model_file(Path(args.model))
    plan = Plan.load(args.plan)
    out = Path(args.out)
    check_output_dir(out, args.overwrite)
    report = apply_plan_folder(model_file, plan, out, fuse=not args.no_fuse, quant_mode=args.quant_mode,
                               overwrite=args.overwrite)
    print(report.table())
    size_in, size_out = _bytes_on_disk(model_file), _bytes_on_disk(out / ONNX_FILE)
    print(f"wrote {out / ONNX_FILE}: {size_out:,} bytes ({size_out / size_in:.3f} of {size_in:,}); "
          f"encoder located by {report.located_by}; quantization layout: {report.quant_mode}")
    return 0
