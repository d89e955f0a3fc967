import numpy as np
import pytest
import torch

from onnx_approx.significance.precision import FakeQuantize, fake_quantize, set_precision, table_shapes

pytestmark = pytest.mark.usefixtures("single_thread")


def numpy_int8(w: np.ndarray) -> np.ndarray:
    out = np.zeros_like(w)
    for r, row in enumerate(w):
        scale = np.float32(np.abs(row).max()) / np.float32(127)
        if scale > 0:
            out[r] = np.clip(np.round(row / scale), -127, 127).astype(np.float32) * scale
    return out


def numpy_int4(w: np.ndarray, block: int = 32) -> np.ndarray:
    out = np.zeros_like(w)
    for r in range(w.shape[0]):
        for start in range(0, w.shape[1], block):
            chunk = w[r, start:start + block]
            scale = np.float32(np.abs(chunk).max()) / np.float32(7)
            scale = np.float32(np.float16(min(scale, np.float32(65504))))  # stored as float16
            if scale > 0:
                out[r, start:start + block] = np.clip(np.round(chunk / scale), -8, 7).astype(np.float32) * scale
    return out


@pytest.fixture
def weight() -> np.ndarray:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 70)).astype(np.float32)  # 70 = two full int4 blocks and a short one
    w[2] = 0.0  # an all-zero channel
    w[3, :32] = 0.0  # an all-zero int4 block
    w[4, :4] = [7.0, 0.5, -0.5, 1.5]  # scale 1 for int4 block 0: exact halves must round to even
    w[4, 4:32] = 0.0
    return w


class TestFakeQuantize:
    def test_int8_matches_numpy(self, weight):
        got = fake_quantize(torch.from_numpy(weight), "int8").numpy()
        np.testing.assert_allclose(got, numpy_int8(weight), rtol=0, atol=1e-7)

    def test_int4_matches_numpy(self, weight):
        got = fake_quantize(torch.from_numpy(weight), "int4").numpy()
        np.testing.assert_allclose(got, numpy_int4(weight), rtol=0, atol=1e-7)

    def test_int4_rounds_half_to_even(self, weight):
        got = fake_quantize(torch.from_numpy(weight), "int4").numpy()
        assert got[4, :4].tolist() == [7.0, 0.0, -0.0, 2.0]

    def test_int4_scales_are_float16(self):
        w = torch.tensor([[7 * 1.0001] + [0.0] * 31, [7e6] + [1e5] * 31])  # 1.0001 and 1e6 are no float16
        got = fake_quantize(w, "int4")
        assert got[0, 0].item() == 7 * float(np.float16(1.0001))
        assert got[1, 0].item() == 7 * 65504.0 and got[1, 1].item() == 2 * 65504.0  # the largest float16 scale

    def test_fp32_passes_through_and_unknown_fails(self, weight):
        w = torch.from_numpy(weight)
        assert fake_quantize(w, "fp32") is w
        with pytest.raises(ValueError, match="unknown precision 'int2'"):
            fake_quantize(w, "int2")


class TestStraightThrough:
    def test_forward_is_quantized_and_gradient_passes_through(self):
        torch.manual_seed(0)
        linear = torch.nn.Linear(40, 3)
        latent = linear.weight.detach().clone()
        set_precision(linear, "int4")
        x = torch.randn(5, 40)
        expected = x @ torch.from_numpy(numpy_int4(latent.numpy())).T + linear.bias
        torch.testing.assert_close(linear(x), expected, rtol=0, atol=1e-5)
        linear(x).sum().backward()
        # d(sum(x W^T))/dW = column sums of x for every row: the STE hands it to the latent weight unchanged.
        grad = linear.parametrizations.weight.original.grad
        torch.testing.assert_close(grad, x.sum(0).expand(3, 40))

    def test_kept_columns_quantize_like_the_pruned_matrix(self):
        torch.manual_seed(0)
        w = torch.randn(4, 48)
        kept = torch.tensor([1, 5, 6, 20, 33, 40, 47])
        gated = FakeQuantize("int4", columns=kept)(w)
        pruned = fake_quantize(w[:, kept], "int4")
        torch.testing.assert_close(gated[:, kept], pruned, rtol=0, atol=0)

    def test_back_to_fp32_restores_the_latent_weight(self):
        linear = torch.nn.Linear(8, 2)
        before = linear.weight.detach().clone()
        set_precision(linear, "int8")
        assert not torch.equal(linear.weight, before)
        set_precision(linear, "fp32")
        assert torch.equal(linear.weight, before)


def test_table_shapes_name_the_head_projection_only_where_there_is_one(tiny_model_dir):
    from transformers import BertForSequenceClassification, BertForTokenClassification

    folder = tiny_model_dir("bert")
    model = BertForSequenceClassification.from_pretrained(folder)
    hidden, vocab = model.config.hidden_size, model.config.vocab_size
    expected = {"word": (vocab, hidden), "position": (model.config.max_position_embeddings, hidden),
                "head": (hidden, hidden)}
    assert table_shapes(model) == expected
    set_precision(model.get_input_embeddings(), "int4")  # a quantized table keeps its shape
    assert table_shapes(model) == expected
    without_pooler = BertForTokenClassification.from_pretrained(folder)
    assert table_shapes(without_pooler) == {k: v for k, v in expected.items() if k != "head"}
