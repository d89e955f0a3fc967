"""Tiny exported models and an independent PyTorch realization of plans, for the graph-pass tests.

The reference realizes a plan without slicing anything: a removed head zeroes its columns of the attention
output projection, a removed neuron zeroes its intermediate row and bias (GELU(0) = 0), so a removed
block leaves its output bias alone; quantized matrices use the project's PyTorch fake
quantization and sign-matching layers the PyTorch module. Weights are drawn larger than at initialization
and biases and norms perturbed, so every approximation visibly changes the logits.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx_ir.passes.common import ShapeInferencePass

from onnx_approx.architectures import spec_for
from onnx_approx.plan import Plan


def _perturb(model) -> None:
    import torch

    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 2 and "embeddings" not in name:
                param.normal_(0.0, 0.3, generator=generator)
            else:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))


@dataclass
class TinyExport:
    """A tiny classification model, its export folder (model.onnx, config, tokenizer) and a reference."""

    model_type: str
    exporter: str
    torch_model: object
    folder: Path

    @property
    def onnx_path(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def dims(self) -> dict[str, int]:
        return spec_for(self.model_type).dims(self.torch_model.config)

    def plan(self) -> Plan:
        return Plan.identity(self.model_type, self.dims)

    def load(self) -> ir.Model:
        model = ir.load(self.onnx_path)
        ShapeInferencePass()(model)
        return model

    def run_passes(self, plan: Plan, *pass_classes) -> tuple[ir.Model, list]:
        """The export with `pass_classes` (each built from the located structure and `plan`) then a cleanup."""
        from graph_passes import CleanupPass, locate

        model = self.load()
        structure = locate(model, self.model_type)
        passes = [cls(structure, plan) for cls in pass_classes]
        for pass_ in passes:
            pass_(model)
        CleanupPass()(model)
        return model, passes

    def inputs(self) -> dict[str, np.ndarray]:
        """Three rows of nine tokens, two of them padded."""
        rng = np.random.default_rng(7)
        ids = rng.integers(5, 100, size=(3, 9)).astype(np.int64)
        mask = np.ones((3, 9), dtype=np.int64)
        mask[1, 6:] = 0
        mask[2, 3:] = 0
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {k: feeds[k] for k in ("input_ids", "attention_mask", "token_type_ids")
                if k != "token_type_ids" or spec_for(self.model_type).uses_token_type_ids}

    def reference_logits(self, plan: Plan | None = None) -> np.ndarray:
        """PyTorch logits with `plan` realized by zeroing weights, fake quantization and sign matching."""
        import torch

        from onnx_approx.significance.precision import apply_precision
        from onnx_approx.topk_attention import apply_sign_match

        model = copy.deepcopy(self.torch_model)
        spec = spec_for(self.model_type)
        base = getattr(model, model.base_model_prefix)
        layers = base.get_submodule(spec.layers)
        plan = plan or self.plan()
        d = plan.head_dim
        with torch.no_grad():
            for layer, lp in zip(layers, plan.layers, strict=True):
                out = layer.get_submodule(spec.matrices["attention.output"])
                for h in range(plan.num_heads):
                    if h not in plan.kept_heads(lp.index):
                        out.weight[:, h * d:(h + 1) * d] = 0
                inter = layer.get_submodule(spec.matrices["ffn.intermediate"])
                dropped = [j for j in range(plan.intermediate_size) if j not in plan.kept_neurons(lp.index)]
                inter.weight[dropped] = 0
                inter.bias[dropped] = 0
            apply_precision(model, plan)  # quantizes the kept columns, as deployed
            apply_sign_match(model, plan)
            feeds = {k: torch.from_numpy(v) for k, v in self.inputs().items()}
            return model(**feeds).logits.numpy()


def ort_session(model: ir.Model | Path, exact_quantized_matmul: bool = True) -> ort.InferenceSession:
    """A CPU session; weight-only quantized MatMuls computed in fp32 (ORT's default quantizes activations)."""
    options = ort.SessionOptions()
    if exact_quantized_matmul:
        options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
    source = str(model) if isinstance(model, Path) else ir.to_proto(model).SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def _export_cache() -> dict:
    return {}


@pytest.fixture
def tiny_export(tiny_model_dir, tmp_path_factory, _export_cache):
    """Factory: tiny_export(model_type="bert", exporter="dynamo", perturbed=True) -> TinyExport (cached).

    `perturbed=False` keeps the weights as initialized: small, and all biases zero, which the exporters
    store once for every layer.
    """

    def make(model_type: str = "bert", exporter: str = "dynamo", perturbed: bool = True) -> TinyExport:
        key = (model_type, exporter, perturbed)
        if key not in _export_cache:
            from transformers import AutoModelForSequenceClassification

            from onnx_approx.export import export_onnx, export_onnx_torchscript

            source = tiny_model_dir(model_type)
            model = AutoModelForSequenceClassification.from_pretrained(source).eval()
            if perturbed:
                _perturb(model)
            folder = tmp_path_factory.mktemp(f"export-{model_type}-{exporter}")
            for path in source.iterdir():
                if path.suffix != ".safetensors":
                    shutil.copy2(path, folder / path.name)
            export = export_onnx if exporter == "dynamo" else export_onnx_torchscript
            export(model, folder / "model.onnx")
            _export_cache[key] = TinyExport(model_type, exporter, model, folder)
        return _export_cache[key]

    return make


@pytest.fixture
def ort_logits():
    """ort_logits(model or path, inputs, exact_quantized_matmul=True) -> first output."""

    def run(model: ir.Model | Path, inputs: dict[str, np.ndarray], exact_quantized_matmul: bool = True):
        return ort_session(model, exact_quantized_matmul).run(None, inputs)[0]

    return run
