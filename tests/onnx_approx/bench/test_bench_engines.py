"""User models for the benchmark: folders or .onnx files, named after them, with clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from onnx_approx.bench import open_models
from onnx_approx.bench.engines import model_name, onnx_file_of


class TestOpenModels:
    def test_folders_and_files_named_after_them(self, built_baselines, tmp_path):
        _, work = built_baselines
        folder = tmp_path / "fast-model"
        shutil.copytree(work / "ort-int8", folder)
        bare = tmp_path / "other.onnx"
        shutil.copy2(work / "ort-fp32" / "model.onnx", bare)
        engines = open_models([folder, bare, folder / "model.onnx"], threads=1, taken={"other"})
        assert list(engines) == ["fast-model", "other-2", "fast-model-2"]
        first, second = engines["fast-model"], engines["other-2"]
        assert first.path == folder / "model.onnx" and first.size_bytes == (folder / "model.onnx").stat().st_size
        assert (first.tokenizer_dir, first.vocab_size, first.max_positions) == (folder, 128, 72)
        assert not first.baseline and second.tokenizer_dir is None and second.vocab_size is None
        feeds = {"input_ids": np.full((2, 5), 7), "attention_mask": np.ones((2, 5), np.int64),
                 "token_type_ids": np.zeros((2, 5), np.int64)}
        assert first.engine(feeds)["logits"].shape == (2, 2)

    def test_errors_name_the_path(self, built_baselines, tmp_path):
        reference, _ = built_baselines
        with pytest.raises(FileNotFoundError, match="model not found: .*missing"):
            onnx_file_of(tmp_path / "missing")
        with pytest.raises(FileNotFoundError, match="no model.onnx in model folder .*export it with"):
            onnx_file_of(reference)
        (tmp_path / "notes.txt").write_text("x")
        with pytest.raises(ValueError, match="notes.txt is neither"):
            onnx_file_of(tmp_path / "notes.txt")

    def test_model_name(self, tmp_path):
        (tmp_path / "run" / "x").mkdir(parents=True)
        (tmp_path / "run" / "x" / "model.onnx").write_bytes(b"")
        (tmp_path / "run" / "small.onnx").write_bytes(b"")
        assert model_name(tmp_path / "run" / "x") == "x" == model_name(tmp_path / "run" / "x" / "model.onnx")
        assert model_name(tmp_path / "run" / "small.onnx") == "small"
