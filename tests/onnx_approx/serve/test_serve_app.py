import asyncio
import json

import httpx
import numpy as np
import pytest

from onnx_approx.serve.app import create_app
from onnx_approx.serve.model import ServedModel
from onnx_approx.serve.settings import ServeSettings

TEXTS = ["the movie was good", "bad", "a really quite boring story", "fun and great"]


@pytest.fixture
def served(exported_model):
    _, out = exported_model("bert")
    return ServedModel(out)


def metric_value(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus exposition text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, value = line.rsplit(" ", 1)
        sample_name, _, rest = sample.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if sample_name == name and got == want:
            return float(value)
    return 0.0


class TestPredict:
    def test_texts_and_pairs_equal_offline(self, served, serve_app):
        pairs = [["who is it", "paris"], ["what", "a river in france"]]
        with serve_app(create_app(served)) as url, httpx.Client(base_url=url) as http:
            r_texts = http.post("/predict", json={"texts": TEXTS})
            r_pairs = http.post("/predict", json={"pairs": pairs})
        assert r_texts.status_code == 200 and r_pairs.status_code == 200
        for response, items in ((r_texts, TEXTS), (r_pairs, [tuple(p) for p in pairs])):
            got = response.json()["predictions"]
            want = served.predict(items)
            assert [p["label"] for p in got] == [p["label"] for p in want]
            np.testing.assert_allclose(
                [list(p["scores"].values()) for p in got], [list(p["scores"].values()) for p in want], atol=1e-5
            )
        assert r_texts.json()["model"] == served.name

    def test_concurrent_requests_are_batched(self, served, serve_app):
        app = create_app(served, ServeSettings(max_batch=32, max_wait_ms=200))

        async def burst(url):
            async with httpx.AsyncClient(base_url=url) as http:
                return await asyncio.gather(*(http.post("/predict", json={"texts": [t]}) for t in TEXTS * 2))

        with serve_app(app) as url:
            responses = asyncio.run(burst(url))
            metrics = httpx.get(f"{url}/metrics").text
        assert [r.status_code for r in responses] == [200] * 8
        runs = metric_value(metrics, "onnx_approx_batch_size_count")
        assert metric_value(metrics, "onnx_approx_batch_size_sum") == 8
        assert runs < 8  # fewer model runs than requests: they were batched
        for r, text in zip(responses, TEXTS * 2):
            (got,), (want,) = r.json()["predictions"], served.predict([text])
            assert got["label"] == want["label"]
            np.testing.assert_allclose(list(got["scores"].values()), list(want["scores"].values()), atol=1e-5)


class TestBadRequests:
    CASES = [
        ("malformed JSON", b'{"texts": ["a",', "application/json", 400, "malformed_json"),
        ("not UTF-8", b'{"texts": ["\xff"]}', "application/json", 400, "malformed_json"),
        ("empty list", b'{"texts": []}', "application/json", 400, "empty_input"),
        ("empty text", b'{"texts": ["  "]}', "application/json", 400, "empty_input"),
        ("no field", b"{}", "application/json", 400, "bad_request"),
        ("both fields", b'{"texts": ["a"], "pairs": [["a", "b"]]}', "application/json", 400, "bad_request"),
        ("unknown field", b'{"text": "a"}', "application/json", 400, "bad_request"),
        ("not a list", b'{"texts": "a"}', "application/json", 400, "bad_request"),
        ("number", b'{"texts": [1]}', "application/json", 400, "bad_request"),
        ("bad pair", b'{"pairs": [["a"]]}', "application/json", 400, "bad_request"),
        ("top-level list", b'["a"]', "application/json", 400, "bad_request"),
        ("too many texts", json.dumps({"texts": ["a"] * 5}).encode(), "application/json", 413, "too_many_texts"),
        ("text too long", json.dumps({"texts": ["a" * 51]}).encode(), "application/json", 413, "text_too_long"),
        ("pair part too long", json.dumps({"pairs": [["a", "b" * 51]]}).encode(), "application/json", 413,
         "text_too_long"),
        ("form body", b"texts=a", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("no content type", b'{"texts": ["a"]}', None, 415, "unsupported_media_type"),
    ]

    @pytest.fixture
    def small_server(self, served, serve_app):
        with serve_app(create_app(served, ServeSettings(max_texts=4, max_text_chars=50))) as url:
            yield url

    def test_each_bad_request_gets_its_status_and_the_server_keeps_serving(self, small_server):
        with httpx.Client(base_url=small_server) as http:
            for name, body, content_type, status, reason in self.CASES:
                headers = {"content-type": content_type} if content_type else {}
                r = http.post("/predict", content=body, headers=headers)
                assert r.status_code == status, name
                assert r.json()["error"], name
            ok = http.post("/predict", json={"texts": ["good"]})
            metrics = http.get("/metrics").text
        assert ok.status_code == 200
        reasons = {}
        for _, _, _, _, reason in self.CASES:
            reasons[reason] = reasons.get(reason, 0) + 1
        for reason, count in reasons.items():
            assert metric_value(metrics, "onnx_approx_errors_total", endpoint="/predict", reason=reason) == count
        assert metric_value(metrics, "onnx_approx_requests_total", endpoint="/predict", status="200") == 1

    def test_oversized_body_is_refused_before_reading(self, small_server):
        limit = ServeSettings(max_texts=4, max_text_chars=50).max_body_bytes
        body = json.dumps({"texts": ["a" * 40] * ((limit // 40) + 10)}).encode()
        r = httpx.post(f"{small_server}/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "limit" in r.json()["error"]

    def test_unknown_path_and_wrong_method(self, small_server):
        with httpx.Client(base_url=small_server) as http:
            assert http.get("/nope").status_code == 404
            r = http.get("/predict")
            assert r.status_code == 405 and "POST" in r.headers["allow"]

    def test_a_failing_model_run_is_a_500_and_the_server_survives(self, served, serve_app, monkeypatch):
        real = served.predict

        def flaky(items):
            if "explode" in items:
                raise RuntimeError("kaboom")
            return real(items)

        monkeypatch.setattr(served, "predict", flaky)
        with serve_app(create_app(served, ServeSettings(max_wait_ms=0))) as url, httpx.Client(base_url=url) as http:
            bad = http.post("/predict", json={"texts": ["explode"]})
            good = http.post("/predict", json={"texts": ["good"]})
            metrics = http.get("/metrics").text
        assert bad.status_code == 500 and "kaboom" in bad.json()["error"]
        assert good.status_code == 200
        assert metric_value(metrics, "onnx_approx_errors_total", endpoint="/predict", reason="internal") == 1


class TestInfoEndpoints:
    def test_health_metadata_metrics(self, served, serve_app):
        settings = ServeSettings(max_batch=8, max_wait_ms=2, max_texts=16, max_text_chars=100)
        with serve_app(create_app(served, settings)) as url, httpx.Client(base_url=url) as http:
            health = http.get("/health")
            meta = http.get("/metadata").json()
            for _ in range(3):
                http.post("/predict", json={"texts": ["good", "bad"]})
            metrics = http.get("/metrics")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert meta["serving"] == {"max_batch": 8, "max_wait_ms": 2, "max_texts": 16, "max_text_chars": 100}
        assert meta["model"]["name"] == served.name and meta["task"] == "classification"
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert metric_value(text, "onnx_approx_requests_total", endpoint="/predict", status="200") == 3
        assert metric_value(text, "onnx_approx_requests_total", endpoint="/health", status="200") == 1
        assert metric_value(text, "onnx_approx_request_latency_seconds_count", endpoint="/predict") == 3
        assert metric_value(text, "onnx_approx_texts_total") == 6
        assert metric_value(text, "onnx_approx_batch_size_sum") == 6
        assert metric_value(text, "onnx_approx_batch_size_bucket", le="8.0") == metric_value(
            text, "onnx_approx_batch_size_count"
        )
        assert "onnx_approx_queued_items" in text
