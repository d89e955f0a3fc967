"""Side-by-side benchmark: the conventional baselines built from a fine-tuned model, the user's models, one
interleaved timing run, optional accuracy, and the table / JSON / Pareto plot of the result.

    engines = build_baselines(reference_dir, work_dir, names, calibration_examples, threads)
    engines |= open_models(paths, threads, taken=set(engines))
    result = run_bench(engines, ["1x128", "1x512"], threads, rounds)
    result.attach_metrics(task.name, "dev", task.main_metric, evaluate_engines(engines, task, dev_examples))
    result.write(out_dir)  # bench.md, bench.json, pareto.png
"""

from onnx_approx.bench.baselines import BASELINES, FP32_BASELINE, build_baselines
from onnx_approx.bench.engines import BenchEngine, onnx_engine, open_models, torch_engine
from onnx_approx.bench.result import BENCH_JSON, BENCH_MD, PARETO_PNG, BenchResult, EngineResult
from onnx_approx.bench.runner import evaluate_engines, parse_shape, parse_shapes, run_bench

__all__ = [
    "BASELINES", "BENCH_JSON", "BENCH_MD", "FP32_BASELINE", "PARETO_PNG", "BenchEngine", "BenchResult", "EngineResult", "build_baselines",
    "evaluate_engines", "onnx_engine", "open_models", "parse_shape", "parse_shapes", "run_bench", "torch_engine",
]
