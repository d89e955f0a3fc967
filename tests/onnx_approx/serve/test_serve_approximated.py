"""Serving an approximated folder (`onnx-approx passes` output): plan summary in /metadata, and the same
predictions whether the sign-match op runs as the compiled kernel or as the model's portable function."""

import numpy as np
import pytest

from onnx_approx import ops
from onnx_approx.cli import main as cli_main
from onnx_approx.ops import library_path
from onnx_approx.ops.library import LIBRARY_ENV
from onnx_approx.plan import Plan
from onnx_approx.serve.model import ServedModel

TEXTS = ["the movie was good", "bad", "a really quite boring story of one actor in paris", "fun and great"]


@pytest.fixture
def approximated(exported_model, tmp_path):
    _, out = exported_model("bert")
    plan = Plan.identity("bert", {"num_layers": 2, "num_heads": 4, "head_dim": 8, "intermediate_size": 48})
    plan.layers[0].attention.sign_match_top_k = 3
    plan.layers[1].attention.heads_kept = [1, 3]
    plan.layers[1].ffn.neurons_kept = list(range(0, 48, 2))
    plan.save(tmp_path / "plan.json")
    target = tmp_path / "approx"
    assert cli_main(["passes", "--model", str(out), "--plan", str(tmp_path / "plan.json"), "--out", str(target)]) == 0
    return target


def test_kernel_and_fallback_agree_and_metadata_has_the_plan(approximated, monkeypatch):
    if library_path() is None:
        pytest.skip("custom-op library not built (make ops)")
    registered = []
    real_register = ops.register_library

    def recording_register(options):
        registered.append(real_register(options))
        return registered[-1]

    monkeypatch.setattr(ops, "register_library", recording_register)
    with_kernel = ServedModel(approximated)
    monkeypatch.setenv(LIBRARY_ENV, str(approximated / "no-such-library.so"))
    with_function = ServedModel(approximated)
    assert registered == [True, False]  # the kernel once, then the portable function

    a, b = with_kernel.predict(TEXTS), with_function.predict(TEXTS)
    assert [p["label"] for p in a] == [p["label"] for p in b]
    np.testing.assert_allclose([list(p["scores"].values()) for p in a], [list(p["scores"].values()) for p in b],
                               atol=1e-5)
    meta = with_kernel.metadata()
    assert meta["model"]["uses_custom_ops"] is True
    assert meta["plan"]["sign_match_layers"] == [0]
    assert meta["plan"]["heads_kept"] == 4 + 2 and meta["plan"]["neurons_kept"] == 48 + 24
