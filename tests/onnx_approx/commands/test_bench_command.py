"""`onnx-approx bench` end to end on tiny models: user models alone, baselines with accuracy, errors."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from onnx_approx.cli import main


def _table(path, rows) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentence", "label"])
        writer.writerows(rows)


class TestBenchCommand:
    def test_two_models(self, built_baselines, tmp_path, capsys):
        _, work = built_baselines
        shutil.copytree(work / "ort-fp32", tmp_path / "a")
        shutil.copy2(work / "ort-int8" / "model.onnx", tmp_path / "b.onnx")
        args = ["bench", "--models", str(tmp_path / "a"), str(tmp_path / "b.onnx"), "--shapes", "1x8,2x16",
                "--rounds", "2", "--warmup", "1", "--threads", "1", "--json", str(tmp_path / "out" / "bench.json")]
        assert main(args) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].startswith("| engine | size MB | size / fp32 | 1x8 p50 / p90 ms")
        assert [line.split("|")[1].strip() for line in table[2:4]] == ["**a**", "**b**"]
        data = json.loads((tmp_path / "out" / "bench.json").read_text())
        assert [e["name"] for e in data["engines"]] == ["a", "b"] and data["shapes"] == ["1x8", "2x16"]
        assert data["engines"][1]["size_bytes"] == (tmp_path / "b.onnx").stat().st_size
        assert data["engines"][0]["timings"]["2x16"]["runs"] == 2 and data["task"] is None

    def test_reference_baselines_with_accuracy_and_plot(self, built_baselines, synthetic_sentences, tmp_path, capsys):
        reference, work = built_baselines
        _table(tmp_path / "train.csv", synthetic_sentences(30))
        _table(tmp_path / "dev.csv", synthetic_sentences(20, seed=3))
        shutil.copytree(work, tmp_path / "work")  # cached baselines: only the static one is rebuilt (other samples)
        args = ["bench", "--reference", str(reference), "--work-dir", str(tmp_path / "work"),
                "--models", str(tmp_path / "work" / "ort-int8"), "--shapes", "1x16", "--rounds", "2", "--warmup", "0",
                "--threads", "1", "--task", "table", "--train-file", str(tmp_path / "train.csv"),
                "--dev-file", str(tmp_path / "dev.csv"), "--calibration-samples", "8", "--out", str(tmp_path / "out")]
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "| accuracy (csv dev) |" in out and f"written to {tmp_path / 'out'}/" in out
        data = json.loads((tmp_path / "out" / "bench.json").read_text())
        names = [e["name"] for e in data["engines"]]
        assert names == ["torch", "ort-fp32", "ort-int8", "ort-int8-fused", "ort-int8-static", "ort-int8-2"]
        assert all(0 <= e["metrics"]["accuracy"] <= 1 for e in data["engines"])
        assert (tmp_path / "out" / "bench.md").read_text().splitlines()[0] == out.splitlines()[0]
        assert (tmp_path / "out" / "pareto.png").read_bytes().startswith(b"\x89PNG")
        assert json.loads((tmp_path / "work" / "ort-int8-static" / "baseline.json").read_text())["calibration_samples"] == 8

    @pytest.mark.parametrize(("extra", "message"), [
        (["--shapes", "1x"], "bad shape '1x'"),
        ([], "nothing to benchmark"),
        (["--baselines", "torch", "--models", "m.onnx"], "--baselines needs --reference"),
        (["--models", "missing-folder"], "model not found: missing-folder"),
        (["--rounds", "0", "--models", "m.onnx"], "--rounds must be >= 1"),
    ])
    def test_errors(self, extra, message, capsys):
        assert main(["bench", *extra]) == 2
        assert message in capsys.readouterr().err

    def test_sequence_too_long_for_the_model(self, built_baselines, capsys):
        _, work = built_baselines
        assert main(["bench", "--models", str(work / "ort-fp32"), "--shapes", "1x128", "--rounds", "1"]) == 2
        assert "longer than engine ort-fp32's max_position_embeddings (72" in capsys.readouterr().err
