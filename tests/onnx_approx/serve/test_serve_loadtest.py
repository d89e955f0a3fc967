import asyncio
import time

import httpx
import pytest

from onnx_approx.serve.app import create_app, parse_items
from onnx_approx.serve.loadtest import ServerProcess, compare_offline, read_payloads, run_load
from onnx_approx.serve.model import ServedModel
from onnx_approx.serve.settings import ServeSettings

SENTENCES = [
    "the movie was good", "bad", "a really quite boring story", "fun and great", "it was not very good at all",
    "loved it", "the plot of this film was awful and the actor was boring", "paris",
]
PAYLOADS = [{"texts": [s]} for s in SENTENCES] + [{"texts": SENTENCES[:3]}, {"pairs": [["who", "paris is a city"]]}]


def offline_predictions(model: ServedModel, payloads) -> list:
    return [model.predict(parse_items(p, ServeSettings())) for p in payloads]


def load_check(model, serve_app, clients, requests_per_client, settings):
    with serve_app(create_app(model, settings)) as url:
        result = asyncio.run(run_load(url, PAYLOADS, clients=clients, requests_per_client=requests_per_client,
                                      timeout_s=300))
        metrics = httpx.get(f"{url}/metrics").text
    assert result.errors == []
    assert result.completed == clients * requests_per_client
    assert compare_offline(offline_predictions(model, PAYLOADS), result.answers) == []
    return result, metrics


class TestLoad:
    def test_small_load_has_no_errors_and_matches_offline(self, exported_model, serve_app):
        _, out = exported_model("bert")
        model = ServedModel(out)
        result, metrics = load_check(model, serve_app, 8, 5, ServeSettings(max_batch=32, max_wait_ms=20))
        summary = result.summary()
        assert summary["p50_ms"] <= summary["p99_ms"] and summary["throughput_rps"] > 0
        runs = sum(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith("onnx_approx_batch_size_count"))
        assert runs < 40  # 40 requests, fewer model runs: concurrent requests were batched

    @pytest.mark.slow
    def test_full_scale_64_clients_x_50_requests(self, exported_model, serve_app):
        _, out = exported_model("bert")
        model = ServedModel(out)
        load_check(model, serve_app, 64, 50, ServeSettings())


class TestCompareOffline:
    def test_reports_label_and_score_differences(self):
        offline = [[{"label": "A", "score": 0.6, "scores": {"A": 0.6, "B": 0.4}}], [{"value": 1.0}]]
        same = [(0, [{"label": "A", "score": 0.6, "scores": {"A": 0.60001, "B": 0.39999}}]), (1, [{"value": 1.00001}])]
        assert compare_offline(offline, same) == []
        other_label = [(0, [{"label": "B", "score": 0.6, "scores": {"A": 0.4, "B": 0.6}}])]
        problems = compare_offline(offline, other_label)
        assert len(problems) == 2 and "label 'B'" in problems[0] and "differ" in problems[1]
        assert "differ" in compare_offline(offline, [(1, [{"value": 1.1}])])[0]
        assert "predictions" in compare_offline(offline, [(0, [])])[0]


def test_read_payloads(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("one\ntwo\n\nfirst\tsecond\nthird\tfourth\nlast\n")
    assert read_payloads(path) == [
        {"texts": ["one"]}, {"texts": ["two"]}, {"pairs": [["first", "second"]]}, {"pairs": [["third", "fourth"]]},
        {"texts": ["last"]},
    ]
    assert read_payloads(path, texts_per_request=2)[:2] == [
        {"texts": ["one", "two"]}, {"pairs": [["first", "second"], ["third", "fourth"]]},
    ]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="no texts"):
        read_payloads(tmp_path / "empty.txt")


class TestGracefulShutdown:
    def test_sigterm_finishes_in_flight_requests(self, exported_model):
        """The real CLI in a child process: requests wait in the batcher (1.5 s) when SIGTERM arrives."""
        _, out = exported_model("bert")
        expected = ServedModel(out).predict(SENTENCES)

        async def scenario(server: ServerProcess):
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                assert (await http.get("/health")).status_code == 200
                in_flight = [asyncio.create_task(http.post("/predict", json={"texts": [s]})) for s in SENTENCES]
                await asyncio.sleep(0.5)  # all sent; the batch waits for --max-wait-ms
                assert not any(task.done() for task in in_flight)
                server.terminate()
                return await asyncio.gather(*in_flight)

        with ServerProcess(out, "--max-wait-ms", "1500", "--max-batch", "64") as server:
            start = time.monotonic()
            responses = asyncio.run(scenario(server))
            code = server.proc.wait(30)
        assert [r.status_code for r in responses] == [200] * len(SENTENCES)
        for response, want in zip(responses, expected):
            assert response.json()["predictions"][0]["label"] == want["label"]
        assert time.monotonic() - start < 30
        log = "".join(server.log_lines)
        assert "Waiting for connections to close" in log or "Shutting down" in log
        assert "batcher drained" in log
        assert code == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/health")
