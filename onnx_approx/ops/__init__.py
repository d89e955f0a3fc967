"""Sign-matching attention: the op `ai.onnx_approx::SignMatchAttention` in its three forms.

- `onnx_approx.ops.sign_match`: PyTorch, trainable (`onnx_approx.topk_attention` runs it in HF layers).
- `csrc/`: the C++ ONNX Runtime kernel, built by `make ops` into `library_path()`; sessions call
  `register_library(session_options)` and fall back to the FunctionProto when it returns False.
- `graph_passes.sign_match_function`: the same op in standard ONNX ops, stored in every model that
  uses it, so the model runs anywhere (another machine, the CUDA execution provider).
`onnx_approx.ops.reference` states the semantics in NumPy; all three are tested against it.

This package's top level imports neither torch nor the library.
"""

from onnx_approx.ops.library import library_path, register_library

__all__ = ["library_path", "register_library"]
