"""Knowledge distillation: the loss against a NumPy reference, and its use in training and recovery."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from onnx_approx.architectures import spec_for
from onnx_approx.data import Example, get_task
from onnx_approx.distill import Distillation, distillation_loss
from onnx_approx.plan import Plan
from onnx_approx.recovery import RecoveryConfig, recover

pytestmark = pytest.mark.usefixtures("single_thread")


def _kl_reference(student: np.ndarray, teacher: np.ndarray, t: float) -> float:
    def softmax(x):
        e = np.exp(x / t - (x / t).max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(teacher.astype(np.float64)), softmax(student.astype(np.float64))
    return float((p * (np.log(p) - np.log(q))).sum(-1).mean() * t * t)


class TestDistillationLoss:
    def test_classification_equals_the_reference(self):
        rng = np.random.default_rng(0)
        s, t = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
        got = distillation_loss(SimpleNamespace(logits=torch.tensor(s)), SimpleNamespace(logits=torch.tensor(t)), 2.0)
        assert got.item() == pytest.approx(_kl_reference(s, t, 2.0), rel=1e-5)

    def test_qa_averages_start_and_end(self):
        rng = np.random.default_rng(1)
        s = {n: rng.normal(size=(4, 12)).astype(np.float32) for n in ("start_logits", "end_logits")}
        t = {n: rng.normal(size=(4, 12)).astype(np.float32) for n in ("start_logits", "end_logits")}
        got = distillation_loss(SimpleNamespace(**{k: torch.tensor(v) for k, v in s.items()}),
                                SimpleNamespace(**{k: torch.tensor(v) for k, v in t.items()}), 1.0)
        expected = np.mean([_kl_reference(s[n], t[n], 1.0) for n in s])
        assert got.item() == pytest.approx(expected, rel=1e-5)

    def test_regression_is_the_squared_error(self):
        s, t = torch.tensor([[0.5], [2.0]]), torch.tensor([[1.5], [2.0]])
        got = distillation_loss(SimpleNamespace(logits=s), SimpleNamespace(logits=t), 2.0)
        assert got.item() == pytest.approx(0.5)

    def test_identical_outputs_cost_nothing(self):
        x = torch.randn(3, 4)
        assert distillation_loss(SimpleNamespace(logits=x), SimpleNamespace(logits=x.clone()), 3.0).item() == \
            pytest.approx(0.0, abs=1e-6)

    @pytest.mark.parametrize("weight, temperature, message", [(0.0, 2.0, "weight"), (1.5, 2.0, "weight"),
                                                              (0.5, 0.0, "temperature")])
    def test_bad_settings_are_refused(self, weight, temperature, message):
        with pytest.raises(ValueError, match=message):
            Distillation(torch.nn.Identity(), weight, temperature)


class TestDistilledRecovery:
    def test_the_loss_blends_the_task_and_the_teacher(self, lively_model, synthetic_sentences):
        """The recorded first-step loss equals (1 - w) * task loss + w * distillation loss computed apart,
        with dropout off so that the training-mode forward is the evaluation one."""
        from onnx_approx.dataset import encode_dataset
        from onnx_approx.features import length_grouped_batches
        from onnx_approx.train import TrainConfig, train

        model, tokenizer, _ = lively_model("bert")
        model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        teacher, _, _ = lively_model("bert")
        teacher.eval()
        examples = [Example(t, None, y, f"s:{i}") for i, (t, y) in enumerate(synthetic_sentences(8))]
        task, config = get_task("sst2"), TrainConfig(epochs=1, batch_size=8, max_seq_len=32, seed=3)
        with torch.no_grad():
            teacher.bert.embeddings.word_embeddings.weight.mul_(0.5)  # a teacher that disagrees
            data = encode_dataset(tokenizer, task, examples, 32)
            batch = data.collate(length_grouped_batches(data.lengths, 8, seed=3)[0], with_token_type_ids=True,
                                 with_labels=True)
            out = model(**batch)
            expected = 0.7 * out.loss + 0.3 * distillation_loss(out, teacher(**batch), 2.0)
        losses = []
        train(model, tokenizer, task, examples, config, on_step=lambda step, loss: losses.append(loss),
              distillation=Distillation(teacher, 0.3))
        assert losses[0] == pytest.approx(expected.item(), rel=1e-5)

    def test_recovery_distils_from_the_given_teacher(self, lively_model, synthetic_sentences, monkeypatch):
        import onnx_approx.recovery

        model, tokenizer, _ = lively_model("bert")
        teacher, _, _ = lively_model("bert")
        seen = []
        real_train = onnx_approx.recovery.train
        monkeypatch.setattr(onnx_approx.recovery, "train",
                            lambda *a, distillation=None, **k: seen.append(distillation) or real_train(
                                *a, distillation=distillation, **k))
        plan = Plan.identity("bert", spec_for("bert").dims(model.config))
        plan.layers[1].ffn.remove = True
        examples = [Example(t, None, y, f"s:{i}") for i, (t, y) in enumerate(synthetic_sentences(8))]
        for distill, expected_teacher in ((0.0, None), (0.5, teacher)):
            _, summary = recover(model, plan, tokenizer, get_task("sst2"), examples,
                                 RecoveryConfig(epochs=1, batch_size=8, distill=distill),
                                 uses_token_type_ids=True, max_seq_len=32, teacher=teacher)
            assert summary["distill"] == distill
            assert (seen[-1] is None) if expected_teacher is None else (seen[-1].teacher is teacher
                                                                        and seen[-1].weight == 0.5)


@pytest.mark.parametrize("distill", [-0.1, 1.5])
def test_recovery_refuses_a_distill_weight_outside_0_1(distill):
    with pytest.raises(ValueError, match="distill weight"):
        RecoveryConfig(distill=distill)
