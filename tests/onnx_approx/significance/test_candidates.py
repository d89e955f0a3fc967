from onnx_approx.plan import Plan
from onnx_approx.significance.candidates import Bundle, Candidate, single_candidates
from onnx_approx.significance.gates import Component, GateLayout

DIMS = {"num_layers": 2, "num_heads": 4, "head_dim": 8, "intermediate_size": 50}
LAYOUT = GateLayout.from_dims(DIMS, group_size=16)  # groups 0..2 of 16 neurons, group 3 of the last 2


def test_removing_heads_one_by_one_ends_in_a_removed_block():
    plan = Plan.identity("bert", DIMS)
    for head in (2, 0, 3):
        plan = Candidate.removal(Component("head", 1, head)).apply(plan, LAYOUT)
    assert plan.layers[1].attention.heads_kept == [1] and not plan.layers[1].attention.remove
    last = Candidate.removal(Component("head", 1, 1))
    plan = last.apply(plan, LAYOUT)
    assert plan.layers[1].attention.remove and plan.layers[1].attention.heads_kept is None
    assert not last.applies_to(plan, LAYOUT)
    assert not Candidate("precision", 1, role="attention.query", value="int8").applies_to(plan, LAYOUT)
    plan.validate()


def test_group_removal_uses_the_group_neurons_and_a_short_last_group():
    plan = Candidate.removal(Component("group", 0, 3)).apply(Plan.identity("bert", DIMS), LAYOUT)
    assert plan.layers[0].ffn.neurons_kept == list(range(48))
    for group in (0, 1):
        plan = Candidate.removal(Component("group", 0, group)).apply(plan, LAYOUT)
    assert plan.layers[0].ffn.neurons_kept == list(range(32, 48))
    plan = Candidate.removal(Component("group", 0, 2)).apply(plan, LAYOUT)
    assert plan.layers[0].ffn.remove and plan.layers[0].ffn.neurons_kept is None
    plan.validate()


def test_edits_leave_the_original_plan_alone():
    plan = Plan.identity("bert", DIMS)
    edited = Candidate("precision", 0, role="ffn.output", value="int4").apply(plan, LAYOUT)
    edited = Candidate("top_k", 0, value=16).apply(edited, LAYOUT)
    assert plan.is_identity()
    assert edited.layers[0].precision_of("ffn.output") == "int4"
    assert edited.layers[0].attention.sign_match_top_k == 16
    assert Candidate("precision", 0, role="ffn.output", value="int4").name == "L0.ffn.output@int4"


def test_table_candidates_set_the_embedding_and_head_precisions():
    plan = Plan.identity("bert", DIMS)
    edited = plan
    for role, value in (("word", "int4"), ("position", "int8"), ("head", "int4")):
        candidate = Candidate("table", 0, role=role, value=value)
        assert candidate.applies_to(edited, LAYOUT)
        edited = candidate.apply(edited, LAYOUT)
        assert not candidate.applies_to(edited, LAYOUT)
    assert plan.is_identity()
    assert edited.embeddings == {"precision": "int4", "position_precision": "int8"}
    assert edited.head == {"precision": "int4"}
    assert [Candidate("table", 0, role=r, value="int8").name for r in ("word", "position", "head")] == [
        "embeddings.word@int8", "embeddings.position@int8", "head@int8"]
    edited.validate()


def test_nested_bundles_apply_what_still_applies():
    def qkv(layer: int) -> Bundle:
        roles = ("attention.query", "attention.key", "attention.value")
        return Bundle(f"L{layer}.attention.qkv@int8", tuple(Candidate("precision", layer, role=r, value="int8")
                                                             for r in roles))

    output = Candidate("precision", 0, role="attention.output", value="int8")
    plan = Plan.identity("bert", DIMS)
    plan.layers[0].precision["attention.key"] = "int8"  # already int8: left as it is
    plan.layers[1].attention.remove = True  # its Q, K, V cannot change
    outer = Bundle("slice", (qkv(1), output, qkv(0)))
    assert outer.layer == 0 and qkv(1).layer == 1
    assert [c.name for c in single_candidates(outer)] == [
        "L1.attention.query@int8", "L1.attention.key@int8", "L1.attention.value@int8", "L0.attention.output@int8",
        "L0.attention.query@int8", "L0.attention.key@int8", "L0.attention.value@int8"]
    assert single_candidates(output) == (output,)
    assert not qkv(1).applies_to(plan, LAYOUT) and qkv(0).applies_to(plan, LAYOUT) and outer.applies_to(plan, LAYOUT)
    edited = outer.apply(plan, LAYOUT)
    assert edited.layers[0].precision == dict.fromkeys(("attention.query", "attention.key", "attention.value",
                                                        "attention.output"), "int8")
    assert edited.layers[1].precision == {} and plan.layers[0].precision == {"attention.key": "int8"}
    assert not outer.applies_to(edited, LAYOUT)
    edited.validate()
