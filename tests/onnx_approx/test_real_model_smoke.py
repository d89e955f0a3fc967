"""One quick end-to-end check on the real MiniLM-L6 and real SST-2 rows (runs in CI)."""

import json

import numpy as np
import pytest

from onnx_approx.cli import main


@pytest.mark.smoke
def test_finetune_export_evaluate_minilm(shared_data, tmp_path, capsys):
    common = ["--task", "sst2", "--data-dir", str(shared_data)]
    assert main(["finetune", *common, "--out", str(tmp_path / "ft"), "--max-train-samples", "48",
                 "--epochs", "1", "--batch-size", "16", "--max-seq-len", "32", "--threads", "2"]) == 0
    assert main(["export", "--model", str(tmp_path / "ft"), "--out", str(tmp_path / "onnx")]) == 0
    for name, model in (("torch", tmp_path / "ft"), ("ort", tmp_path / "onnx"), ("file", tmp_path / "onnx" / "model.onnx")):
        assert main(["evaluate", "--model", str(model), *common, "--max-samples", "40", "--max-seq-len", "32",
                     "--json", str(tmp_path / f"{name}.json")]) == 0
    results = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in ("torch", "ort", "file")}
    assert results["torch"]["engine"] == "pytorch" and results["ort"]["engine"] == "onnxruntime"
    assert results["torch"]["metrics"] == results["ort"]["metrics"] == results["file"]["metrics"]
    assert results["torch"]["samples"] == 40
    assert 0.0 <= results["torch"]["metrics"]["accuracy"] <= 1.0
    assert np.isfinite(list(results["torch"]["metrics"].values())).all()
