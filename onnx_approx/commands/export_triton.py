"""Write a Triton Inference Server model repository entry (onnxruntime backend) for an ONNX output folder.

Example:
  onnx-approx export-triton out/sst2-fast --repo triton-models --name sst2 --max-batch 32
  docker run --rm -p 8000:8000 -v $PWD/triton-models:/models nvcr.io/nvidia/tritonserver:<tag>-py3 \\
      tritonserver --model-repository=/models

Writes <repo>/<name>/config.pbtxt (inputs input_ids, attention_mask[, token_type_ids] as INT64 with
dims [-1], output logits, dynamic batching up to --max-batch), <repo>/<name>/1/model.onnx and, for
classifiers, labels.txt. When the model uses the sign-match custom op and its library is built, the
library is copied beside the config and named in `model_operations { op_library_filename }`; pass
--op-library-path with the path the server sees (e.g. /models/sst2/libonnx_approx_ops.so inside a
container). Clients tokenize with the tokenizer of the output folder.
"""

from __future__ import annotations

import argparse

NAME = "export-triton"
HELP = "write a Triton model repository (onnxruntime backend) for an ONNX output folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("outdir", help="output folder of `onnx-approx export` or `onnx-approx passes`")
    parser.add_argument("--repo", required=True, help="Triton model repository folder (created if missing)")
    parser.add_argument("--name", default=None, help="model name in the repository (default: the folder's name)")
    parser.add_argument("--max-batch", type=int, default=32, help="max_batch_size (default: %(default)s)")
    parser.add_argument(
        "--max-wait-ms", type=float, default=5.0,
        help="dynamic batching max_queue_delay, in milliseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--op-library-path", default=None,
        help="path the Triton server loads the custom-op library from (default: the copy in the repository)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace <repo>/<name> if it exists")


def run(args: argparse.Namespace) -> int:
    from onnx_approx.serve.triton import export_triton

    target = export_triton(
        args.outdir,
        args.repo,
        name=args.name,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        op_library_path=args.op_library_path,
        overwrite=args.overwrite,
    )
    print(f"Triton model written to {target}")
    return 0
