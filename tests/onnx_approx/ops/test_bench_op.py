"""`onnx-approx bench-op` on a tiny grid: every engine is timed and the table and JSON say so."""

from __future__ import annotations

import json

import pytest

from onnx_approx.cli import main
from onnx_approx.ops.bench_op import BenchConfig, markdown_table, run_benchmark

TINY = ["--heads", "2", "--head-dims", "8", "--seq-lens", "16", "40", "--top-ks", "4", "--rounds", "2"]


class TestBenchOp:
    def test_rows_cover_the_grid(self, built_library):
        config = BenchConfig(heads=2, head_dims=(8,), seq_lens=(16, 40), top_ks=(4, 64), rounds=2, warmup=1)
        rows = run_benchmark(config)
        assert [(r.head_dim, r.seq_len, r.top_k) for r in rows] == [(8, 16, 4), (8, 16, 64), (8, 40, 4), (8, 40, 64)]
        for row in rows:
            assert set(row.baselines) == {"MultiHeadAttention", "Attention-23"}
            assert row.sign_match.runs == 2 and 0 < row.sign_match.min_ms <= row.sign_match.p50_ms <= row.sign_match.p90_ms
            fastest = min(t.p50_ms for t in row.baselines.values())
            assert row.speedup_p50 == pytest.approx(fastest / row.sign_match.p50_ms)
        table = markdown_table(rows).splitlines()
        assert len(table) == 2 + len(rows) and all(line.count("|") == 9 for line in table)

    def test_cli_prints_table_and_writes_json(self, built_library, tmp_path, capsys):
        assert main(["bench-op", *TINY, "--json", str(tmp_path / "bench.json")]) == 0
        assert "| 8 | 40 | 4 |" in capsys.readouterr().out
        data = json.loads((tmp_path / "bench.json").read_text())
        assert len(data["rows"]) == 2 and data["kernel_isa"] in ("generic", "avx2", "avx512", "avx512icl")

    def test_cli_rejects_bad_grid(self, capsys):
        assert main(["bench-op", *TINY[:-1], "0"]) == 2
        assert "rounds must be >= 1" in capsys.readouterr().err
