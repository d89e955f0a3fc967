"""Baselines built from a tiny fine-tuned BERT folder: each computes what the PyTorch model computes (fp32
exactly, int8 approximately), is what its name says, and is rebuilt only when its inputs change."""

from __future__ import annotations

import logging
import shutil
from collections import Counter

import numpy as np
import onnx
import pytest

from onnx_approx.bench import BASELINES, build_baselines
from onnx_approx.bench import baselines as baselines_module
from onnx_approx.bench.baselines import INFO_FILE, BaselineBuilder, folder_fingerprint
from onnx_approx.io_utils import read_json


def _reference_logits(folder, batch) -> np.ndarray:
    """The PyTorch model straight from transformers (not through the project's engines)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()


def _ops(folder) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(folder / "model.onnx")).graph.node)


class TestBaselines:
    def test_each_baseline_computes_the_pytorch_model(self, built_baselines, calibration_examples, sentence_batch,
                                                      single_thread):
        reference, work = built_baselines
        engines = build_baselines(reference, work, BASELINES, calibration_examples, threads=1)
        assert list(engines) == list(BASELINES) and all(e.baseline for e in engines.values())
        expected = _reference_logits(reference, sentence_batch)
        margin = expected[:, 1] - expected[:, 0]
        for name, bench_engine in engines.items():
            logits = bench_engine.engine(sentence_batch)["logits"]
            if name in ("torch", "ort-fp32"):
                np.testing.assert_allclose(logits, expected, atol=1e-4, err_msg=name)
                continue
            agree = (logits.argmax(-1) == expected.argmax(-1)).mean()
            assert agree >= 0.9, f"{name}: argmax agrees on {agree:.0%} of the inputs"
            assert np.abs(logits - expected).max() < 0.25 * np.abs(expected).max(), name
            assert np.corrcoef(margin, logits[:, 1] - logits[:, 0])[0, 1] > 0.85, name  # follows the inputs

    def test_each_baseline_is_what_its_name_says(self, built_baselines):
        reference, work = built_baselines
        fp32, int8, fused, static = (_ops(work / n) for n in ("ort-fp32", "ort-int8", "ort-int8-fused", "ort-int8-static"))
        assert fp32["Attention"] == 2 and fp32["SkipLayerNormalization"] >= 2 and "MatMulInteger" not in fp32
        assert int8["DynamicQuantizeLinear"] and (int8["MatMulInteger"] or int8["DynamicQuantizeMatMul"])
        assert fused["QAttention"] == 2 and fused["QEmbedLayerNormalization"] == 1  # ORT's optimizer fused it
        assert static["QuantizeLinear"] and static["DequantizeLinear"] and "DynamicQuantizeLinear" not in static
        for name in BASELINES[1:]:  # a full model folder each, for evaluate and optimum's ORTModel
            assert {"model.onnx", "config.json", "tokenizer_config.json", INFO_FILE} <= {p.name for p in (work / name).iterdir()}
        sizes = {n: (work / n / "model.onnx").stat().st_size for n in BASELINES[1:]}
        assert sizes["ort-int8"] < sizes["ort-fp32"] and sizes["ort-int8-fused"] < sizes["ort-fp32"]

    def test_torch_baseline_size_is_the_weight_files(self, built_baselines):
        reference, work = built_baselines
        engine = build_baselines(reference, work, ["torch"], threads=1)["torch"]
        assert engine.size_bytes == (reference / "model.safetensors").stat().st_size
        assert engine.tokenizer_dir == reference and engine.vocab_size == 128 and engine.max_positions == 72


class TestCache:
    def test_a_second_build_reuses_and_new_calibration_rebuilds_static_only(self, built_baselines,
                                                                            calibration_examples, tmp_path, caplog):
        reference, shared = built_baselines
        work = tmp_path / "work"
        shutil.copytree(shared, work)
        names = ["ort-fp32", "ort-int8", "ort-int8-static"]
        stamps = {n: (work / n / "model.onnx").stat().st_mtime_ns for n in names}
        with caplog.at_level(logging.INFO, logger="onnx_approx.bench.baselines"):
            build_baselines(reference, work, names, calibration_examples, threads=1)
        assert {n: (work / n / "model.onnx").stat().st_mtime_ns for n in names} == stamps
        assert "built none; reused ort-fp32, ort-int8, ort-int8-static" in caplog.text
        build_baselines(reference, work, names, calibration_examples[:5], threads=1)
        rebuilt = {n for n in names if (work / n / "model.onnx").stat().st_mtime_ns != stamps[n]}
        assert rebuilt == {"ort-int8-static"}
        assert read_json(work / "ort-int8-static" / INFO_FILE)["calibration_samples"] == 5

    def test_fingerprint_covers_the_recipe_version(self, built_baselines, monkeypatch):
        reference, work = built_baselines
        builder = BaselineBuilder(reference, work)
        before = {n: builder.fingerprint(n) for n in BASELINES[1:]}
        assert len(set(before.values())) == len(before)  # one per baseline
        monkeypatch.setattr(baselines_module, "RECIPE_VERSION", baselines_module.RECIPE_VERSION + 1)
        assert all(builder.fingerprint(n) != fp for n, fp in before.items())

    def test_fingerprint_follows_the_weights_not_the_tokenizer(self, built_baselines, tmp_path):
        reference, _ = built_baselines
        copy = tmp_path / "copy"
        shutil.copytree(reference, copy)
        before = folder_fingerprint(copy)
        (copy / "tokenizer_config.json").write_text((copy / "tokenizer_config.json").read_text() + " ")
        assert folder_fingerprint(copy) == before
        weights = bytearray((copy / "model.safetensors").read_bytes())
        weights[-1] ^= 1
        (copy / "model.safetensors").write_bytes(bytes(weights))
        assert folder_fingerprint(copy) != before


class TestNames:
    def test_default_leaves_static_out_without_calibration(self, built_baselines):
        reference, work = built_baselines
        assert list(build_baselines(reference, work, threads=1)) == [n for n in BASELINES if n != "ort-int8-static"]

    def test_static_asked_for_without_calibration_is_an_error(self, built_baselines):
        with pytest.raises(ValueError, match="ort-int8-static needs calibration"):
            build_baselines(*built_baselines, ["ort-int8-static"])

    def test_unknown_baseline_and_missing_reference(self, built_baselines, tmp_path):
        with pytest.raises(ValueError, match="unknown baseline.*ort-int4.*choose from torch"):
            build_baselines(*built_baselines, ["ort-int4"])
        with pytest.raises(ValueError, match="nowhere.*nor an existing folder"):
            build_baselines(tmp_path / "nowhere", tmp_path / "work")
