"""Serving and deployment of ONNX output folders.

- `model.ServedModel`: an output folder loaded once (session, tokenizer, labels) -> predictions.
- `batcher.DynamicBatcher`: groups items of concurrent requests into one model run.
- `app.create_app`: the Starlette HTTP app (/predict, /health, /metadata, /metrics).
- `triton.export_triton`: a Triton Inference Server model repository (onnxruntime backend).
- `loadtest`: a loopback load test and the dynamic-batching vs batch-1 benchmark.

Submodules are imported on use: `settings` stays light for the CLI's --help.
"""
