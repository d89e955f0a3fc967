"""The resumable step runner on toy steps: skip when unchanged, rerun what depends on a change, atomic folders,
checkpointed steps that resume, shared steps in the cache."""

import json
from dataclasses import dataclass, field

import pytest

from onnx_approx.pipeline.runner import MARKER_FILE, Runner, Step


@dataclass
class Ctx:
    values: dict
    folders: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)


def toy_steps(fail: set | None = None) -> list[Step]:
    """a (shared) <- b <- c, and d independent; each writes its input plus its dependencies' outputs."""
    fail = fail if fail is not None else set()

    def make(name, deps, **kw):
        def run(ctx, out):
            ctx.calls.append(name)
            if name in fail:
                (out / "half.txt").write_text("half")
                raise KeyboardInterrupt
            parts = [str(ctx.values[name])] + [(ctx.folders[d] / "out.txt").read_text() for d in deps]
            (out / "out.txt").write_text("+".join(parts))
            return {"parts": len(parts)}

        return Step(name, run, lambda ctx: {"value": ctx.values[name]}, deps=deps, **kw)

    return [make("a", (), shared=True), make("b", ("a",)), make("c", ("b",)), make("d", ())]


def run(ctx, tmp_path, out="run", steps=None, from_step=None):
    return Runner(steps or toy_steps(), ctx, tmp_path / out, tmp_path / ".cache", package="1").run(from_step)


def test_unchanged_steps_are_reused_and_a_change_reruns_only_what_depends_on_it(tmp_path):
    ctx = Ctx({"a": 1, "b": 2, "c": 3, "d": 4})
    records = run(ctx, tmp_path)
    assert ctx.calls == ["a", "b", "c", "d"]
    assert (records["c"].folder / "out.txt").read_text() == "3+2+1"
    assert records["a"].folder.parent == tmp_path / ".cache" and records["b"].folder == tmp_path / "run/steps/b"
    marker = json.loads((records["c"].folder / MARKER_FILE).read_text())
    assert marker["inputs"] == {"value": 3} and marker["facts"] == {"parts": 2} and marker["seconds"] >= 0

    ctx.calls.clear()
    records = run(ctx, tmp_path)
    assert ctx.calls == [] and all(r.reused for r in records.values())

    ctx.values["b"] = 20
    records = run(ctx, tmp_path)
    assert ctx.calls == ["b", "c"]
    assert (records["c"].folder / "out.txt").read_text() == "3+20+1"
    assert [n for n, r in records.items() if r.reused] == ["a", "d"]

    ctx.calls.clear()
    run(ctx, tmp_path, from_step="c")
    assert ctx.calls == ["c", "d"]  # forced: that step and every one after it


def test_a_new_package_version_reruns_everything(tmp_path):
    ctx = Ctx({"a": 1, "b": 2, "c": 3, "d": 4})
    Runner(toy_steps(), ctx, tmp_path / "run", tmp_path / ".cache", package="1").run()
    ctx.calls.clear()
    Runner(toy_steps(), ctx, tmp_path / "run", tmp_path / ".cache", package="2").run()
    assert ctx.calls == ["a", "b", "c", "d"]


def test_shared_steps_are_found_by_another_run_with_the_same_inputs(tmp_path):
    ctx = Ctx({"a": 1, "b": 2, "c": 3, "d": 4})
    run(ctx, tmp_path, out="first")
    ctx.calls.clear()
    records = run(ctx, tmp_path, out="second")
    assert ctx.calls == ["b", "c", "d"] and records["a"].reused
    ctx.values["a"] = 10
    ctx.calls.clear()
    run(ctx, tmp_path, out="second")
    assert ctx.calls == ["a", "b", "c"]
    assert len(list((tmp_path / ".cache").iterdir())) == 2  # one folder per fingerprint


def test_an_interrupted_step_leaves_no_folder_and_finished_steps_stay(tmp_path):
    ctx = Ctx({"a": 1, "b": 2, "c": 3, "d": 4})
    with pytest.raises(KeyboardInterrupt):
        run(ctx, tmp_path, steps=toy_steps(fail={"c"}))
    steps_dir = tmp_path / "run" / "steps"
    assert sorted(p.name for p in steps_dir.iterdir()) == ["b"]  # no c, no temporary folder
    ctx.calls.clear()
    run(ctx, tmp_path)
    assert ctx.calls == ["c", "d"]


def test_a_checkpointing_step_resumes_its_partial_work_unless_its_inputs_changed(tmp_path):
    seen = []

    def work(ctx, out):
        out.mkdir(exist_ok=True)
        seen.append(sorted(p.name for p in out.iterdir()))
        (out / f"piece{ctx.values['k']}-{len(seen)}").write_text("x")
        if ctx.values.get("stop"):
            raise KeyboardInterrupt

    steps = [Step("k", work, lambda ctx: {"k": ctx.values["k"]}, checkpoints=True)]
    ctx = Ctx({"k": 1, "stop": True})
    with pytest.raises(KeyboardInterrupt):
        run(ctx, tmp_path, steps=steps)
    folder = tmp_path / "run" / "steps" / "k"
    assert not folder.exists() and (folder.parent / ".k.partial" / "piece1-1").is_file()
    with pytest.raises(KeyboardInterrupt):
        run(ctx, tmp_path, steps=steps)
    assert seen[-1] == ["piece1-1"]  # resumed with the earlier work in place
    ctx.values.update(k=2, stop=False)
    records = run(ctx, tmp_path, steps=steps)
    assert seen[-1] == []  # other inputs: the partial work was thrown away
    assert sorted(p.name for p in folder.iterdir()) == sorted([MARKER_FILE, "piece2-3"])
    assert records["k"].folder == folder and not list(folder.parent.glob(".k*"))


def test_bad_step_lists_and_step_names(tmp_path):
    ctx = Ctx({"a": 1, "b": 2, "c": 3, "d": 4})
    steps = toy_steps()
    with pytest.raises(ValueError, match="step 'b' depends on \\['a'\\], which do not run before it"):
        Runner([steps[1], steps[0]], ctx, tmp_path / "run", tmp_path / ".cache")
    with pytest.raises(ValueError, match="--from-step must be one of a, b, c, d, got 'e'"):
        run(ctx, tmp_path, from_step="e")
    assert not (tmp_path / "run").exists()
