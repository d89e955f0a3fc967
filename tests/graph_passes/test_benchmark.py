from graph_passes.benchmark import main


def test_benchmark_runs_every_variant(tiny_export, capsys):
    export = tiny_export("bert")
    assert main(["--model", str(export.onnx_path), "--rounds", "1", "--seq", "8"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) == {"fused", "int4-half-heads", "half-ffn", "int8-speed"}
    assert float(rows["int4-half-heads"][2]) < 0.5  # fraction of the export's bytes
