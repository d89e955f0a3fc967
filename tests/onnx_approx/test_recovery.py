import pytest
import torch

from onnx_approx.architectures import spec_for
from onnx_approx.data import Example, get_task
from onnx_approx.plan import Plan
from onnx_approx.recovery import RecoveryConfig, recover

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("restart", [False, True])
def test_recovery_trains_what_the_plan_keeps(lively_model, synthetic_sentences, tiny_model_dir, restart):
    model, tokenizer, _ = lively_model("bert")
    pretrained = tiny_model_dir("bert", seed=1)
    plan = Plan.identity("bert", spec_for("bert").dims(model.config))
    plan.layers[0].attention.heads_kept = [0, 1]
    plan.layers[1].ffn.remove = True
    plan.layers[1].precision["attention.value"] = "int8"
    examples = [Example(t, None, y, f"s:{i}") for i, (t, y) in enumerate(synthetic_sentences(16))]
    config = RecoveryConfig(epochs=1, batch_size=8, lr=1e-3, start_from=str(pretrained) if restart else None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    start = before if not restart else {k: v.clone() for k, v in
                                        type(model).from_pretrained(pretrained).state_dict().items()}
    full, summary = recover(model, plan, tokenizer, get_task("sst2"), examples, config,
                            uses_token_type_ids=True, max_seq_len=32)
    assert summary["steps"] == 2 and summary["start_from"] == (str(pretrained) if restart else "fine-tuned")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the input model is untouched
    after = full.state_dict()
    query = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(after[query][:16], start[query][:16])  # kept heads 0, 1 trained
    assert torch.equal(after[query][16:], start[query][16:])  # removed heads left as they were
    ffn = "bert.encoder.layer.1.intermediate.dense.weight"
    assert torch.equal(after[ffn], start[ffn])  # removed FFN block
    value = "bert.encoder.layer.1.attention.self.value.weight"
    assert not torch.equal(after[value], start[value])  # the int8 matrix's fp32 latent weight learned (STE)


def test_recovery_trains_on_a_subset_when_asked(lively_model, synthetic_sentences):
    model, tokenizer, _ = lively_model("bert")
    plan = Plan.identity("bert", spec_for("bert").dims(model.config))
    examples = [Example(t, None, y, f"s:{i}") for i, (t, y) in enumerate(synthetic_sentences(16))]
    config = RecoveryConfig(epochs=1, batch_size=4, max_train_samples=6)
    _, summary = recover(model, plan, tokenizer, get_task("sst2"), examples, config,
                         uses_token_type_ids=True, max_seq_len=32)
    assert summary["steps"] == 2  # 6 of the 16 examples in batches of 4


def test_restarting_from_weights_without_the_task_head_is_seeded(lively_model, synthetic_sentences, tiny_model_dir,
                                                                  tmp_path):
    """Restarting from a pre-trained model without this task's head (as MiniLM) draws the same new head in every
    run, whatever the global RNG did before: one seed, one recovered model."""
    from transformers import AutoModel

    model, tokenizer, _ = lively_model("bert")
    base = tmp_path / "base"
    AutoModel.from_pretrained(tiny_model_dir("bert", seed=1)).save_pretrained(base)
    plan = Plan.identity("bert", spec_for("bert").dims(model.config))
    examples = [Example(t, None, y, f"s:{i}") for i, (t, y) in enumerate(synthetic_sentences(16))]
    config = RecoveryConfig(epochs=1, batch_size=8, lr=1e-3, start_from=str(base))
    runs = []
    for _ in range(2):
        recovered, _ = recover(model, plan, tokenizer, get_task("sst2"), examples, config,
                               uses_token_type_ids=True, max_seq_len=32)
        runs.append(recovered.classifier.weight.detach().clone())
        torch.rand(7)  # the global RNG moves on between runs
    assert torch.equal(*runs)
