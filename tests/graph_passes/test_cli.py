"""`onnx-approx passes` (onnx_approx/commands/passes.py)."""

import json

import numpy as np
import pytest

from onnx_approx.cli import main


def _plan_file(export, tmp_path, **changes):
    plan = export.plan()
    plan.layers[0].attention.heads_kept = [1, 2]
    plan.layers[1].ffn.remove = True
    plan.layers[1].precision = {"attention.value": "int4"}
    path = tmp_path / "plan.json"
    data = plan.to_dict()
    data.update(changes)
    path.write_text(json.dumps(data))
    return plan, path


class TestPassesCommand:
    def test_writes_an_export_folder(self, tiny_export, ort_logits, tmp_path, capsys):
        export = tiny_export("bert")
        plan, plan_path = _plan_file(export, tmp_path)
        out = tmp_path / "out"
        assert main(["passes", "--model", str(export.folder), "--plan", str(plan_path), "--out", str(out)]) == 0
        names = {p.name for p in out.iterdir()}
        assert {"model.onnx", "plan.json", "passes_report.json", "config.json", "vocab.txt"} <= names
        assert not any(name.endswith(".data") or name.endswith(".safetensors") for name in names)
        np.testing.assert_allclose(ort_logits(out / "model.onnx", export.inputs()), export.reference_logits(plan),
                                   atol=1e-4)
        report = json.loads((out / "passes_report.json").read_text())
        assert [p["name"] for p in report["passes"]][:3] == ["RemoveBlocksPass", "PruneHeadsPass", "PruneNeuronsPass"]
        printed = capsys.readouterr().out
        assert "PruneHeadsPass" in printed and "wrote" in printed

    def test_refuses_an_existing_folder_unless_overwrite(self, tiny_export, tmp_path, capsys):
        export = tiny_export("bert")
        _, plan_path = _plan_file(export, tmp_path)
        out = tmp_path / "out"
        out.mkdir()
        (out / "keep.txt").write_text("x")
        args = ["passes", "--model", str(export.onnx_path), "--plan", str(plan_path), "--out", str(out)]
        assert main(args) == 2
        assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
        assert main([*args, "--overwrite"]) == 0
        assert (out / "model.onnx").is_file() and not (out / "keep.txt").exists()

    @pytest.mark.parametrize(("change", "message"), [
        ({"num_layers": 3}, "'layers' has 2 entries but num_layers is 3"),
        ({"num_heads": 8}, "num_heads=8, the model has num_heads=4"),
        ({"model_type": "roberta"}, "made for model_type 'roberta', the model is 'bert'"),
    ])
    def test_bad_plan_leaves_no_output(self, tiny_export, tmp_path, capsys, change, message):
        export = tiny_export("bert")
        _, plan_path = _plan_file(export, tmp_path, **change)
        out = tmp_path / "out"
        assert main(["passes", "--model", str(export.folder), "--plan", str(plan_path), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists() and not list(tmp_path.glob(".out*"))

    def test_head_index_out_of_range(self, tiny_export, tmp_path, capsys):
        export = tiny_export("bert")
        _, plan_path = _plan_file(export, tmp_path)
        data = json.loads(plan_path.read_text())
        data["layers"][1]["attention"]["heads_kept"] = [0, 4]
        plan_path.write_text(json.dumps(data))
        assert main(["passes", "--model", str(export.folder), "--plan", str(plan_path), "--out",
                     str(tmp_path / "out")]) == 2
        assert "layers[1].attention.heads_kept: index 4 out of range 0..3" in capsys.readouterr().err

    def test_unrecognizable_model(self, tiny_export, tmp_path, capsys):
        import onnx
        from onnx import TensorProto, helper

        export = tiny_export("bert")
        _, plan_path = _plan_file(export, tmp_path)
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        onnx.save(helper.make_model(graph), tmp_path / "model.onnx")
        assert main(["passes", "--model", str(tmp_path / "model.onnx"), "--plan", str(plan_path), "--out",
                     str(tmp_path / "out")]) == 2
        assert "no projection found" in capsys.readouterr().err

    def test_help_teaches_with_an_example(self, capsys):
        with pytest.raises(SystemExit):
            main(["passes", "--help"])
        printed = capsys.readouterr().out
        assert "onnx-approx passes --model" in printed and "--quant-mode" in printed

