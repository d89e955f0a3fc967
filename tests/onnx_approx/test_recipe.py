"""Recipes: defaults from the config classes, type checks, errors naming file and field, the shipped recipes."""

import dataclasses
import logging
from pathlib import Path

import pytest

from onnx_approx.recipe import BenchConfig, RecipeError, load_recipe, parse_recipe
from onnx_approx.recovery import RecoveryConfig
from onnx_approx.search import SearchConfig
from onnx_approx.significance.analysis import AnalysisConfig
from onnx_approx.train_config import TrainConfig

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = sorted(MODELS.glob("*.toml"))
MINIMAL = 'model = "minilm-l6"\ntask = "sst2"\ngoal = "faster"\n'


def write(tmp_path, text: str, name: str = "r.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_minimal_recipe_takes_the_config_classes_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL, "my-recipe.toml"))
    seed = TrainConfig().seed
    assert recipe.name == "my-recipe" and recipe.out == Path("runs/my-recipe") and recipe.seed == seed
    assert recipe.finetune == TrainConfig()
    assert recipe.analysis == AnalysisConfig(seed=seed)
    assert recipe.search == SearchConfig(goal="faster")
    assert recipe.recovery == RecoveryConfig(seed=seed)
    assert recipe.bench == BenchConfig() and recipe.rounds == 1


def test_fields_reach_their_configs_with_one_seed_everywhere(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL.replace("faster", "smaller") + """seed = 7
out = "elsewhere"
[bounds]
max_rel_drop = 0.01
[finetune]
epochs = 2
max_train_samples = 500
[analysis]
val_samples = 300
[search]
top_k = [64, 32]
rounds = 2
[recovery]
lr = 1e-5
[bench]
shapes = ["1x64"]
baselines = ["ort-int8"]
"""))
    assert recipe.out == Path("elsewhere")
    assert recipe.finetune.epochs == 2.0 and isinstance(recipe.finetune.epochs, float)  # TOML int as float
    assert recipe.finetune.max_train_samples == 500
    assert (recipe.finetune.seed, recipe.analysis.seed, recipe.recovery.seed) == (7, 7, 7)
    assert recipe.search == SearchConfig(goal="smaller", max_rel_drop=0.01, top_k=(32, 64))
    assert recipe.rounds == 2 and recipe.recovery.lr == 1e-5 and recipe.analysis.val_samples == 300
    assert recipe.bench.shapes == ("1x64",) and recipe.bench.baselines == ("ort-int8",)
    assert recipe.to_dict()["search"]["top_k"] == (32, 64)


@pytest.mark.parametrize(("text", "message"), [
    (MINIMAL + "modle = 1\n", "unknown key 'modle'"),
    (MINIMAL + "[finetune]\nepoch = 1\n", "finetune.epoch: unknown key (known: batch_size, epochs,"),
    (MINIMAL + "[finetune]\nepochs = \"one\"\n", "finetune.epochs must be a number, got 'one'"),
    (MINIMAL + "[finetune]\nbatch_size = true\n", "finetune.batch_size must be an integer, got True"),
    (MINIMAL + "[finetune]\nseed = 3\n", "finetune.seed: unknown key (known:"),
    (MINIMAL + "[search]\nmax_rel_drop = 0.1\n", "it belongs in [bounds]"),
    (MINIMAL + "[search]\ntop_k = 32\n", "search.top_k must be a list, got 32"),
    (MINIMAL + "[search]\ntop_k = [\"a\"]\n", "search.top_k[0] must be an integer"),
    (MINIMAL + "[search]\nrounds = 2\n[recovery]\nepochs = 0\n", "search.rounds must be 1, or more with recovery"),
    (MINIMAL + "[bounds]\nmax_rel_drop = 1.5\n", "[bounds]/[search] --max-rel-drop must be in [0, 1), got 1.5"),
    (MINIMAL + "[bounds]\nmax_drop = 0.1\n", "unknown key 'bounds.max_drop'"),
    (MINIMAL + "[bench]\nshapes = [\"128\"]\n", "[bench] bad shape '128'"),
    (MINIMAL + "[bench]\nbaselines = [\"onnx\"]\n", "[bench] unknown baseline(s) onnx"),
    (MINIMAL + "finetune = 3\n", "finetune must be a table ([finetune]), got int"),
    (MINIMAL.replace("faster", "fastest"), "goal must be one of faster, smaller, accurate, none, got 'fastest'"),
    (MINIMAL.replace('goal = "faster"\n', ""), "missing required key 'goal'"),
    (MINIMAL.replace("sst2", "table"), "data.train_file is required for task 'table'"),
    (MINIMAL + "[data]\ntrain_file = \"t.tsv\"\n", "data.train_file is required for task 'table' and only there"),
    (MINIMAL + "seed = [\n", "invalid TOML"),
])
def test_errors_name_the_file_and_the_field(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipe not found"):
        load_recipe(tmp_path / "nope.toml")


def test_goal_none_ignores_search_settings_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="onnx_approx.recipe"):
        recipe = parse_recipe({"model": "m", "task": "sst2", "goal": "none", "search": {"patience": 3}}, "b", "b.toml")
    assert recipe.search is None and not recipe.approximates
    assert "b.toml: goal 'none' runs no search" in caplog.text


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_recipes_parse(path):
    recipe = load_recipe(path)
    assert recipe.model == "minilm-l6" and recipe.name == path.stem
    assert path.stem.endswith("baseline") == (recipe.goal == "none")


def test_every_task_has_a_baseline_and_three_modes():
    names = {p.stem for p in SHIPPED}
    for task in ("sst2", "cola", "rte"):
        assert {f"minilm-{task}-{mode}" for mode in ("baseline", "faster", "smaller", "accurate")} <= names
    makefile = (MODELS.parent / "Makefile").read_text()
    assert "onnx-approx run models/minilm-sst2-faster.toml" in makefile


def test_recipes_of_one_task_share_fine_tuning_and_analysis(shared_data):
    """Same fine-tuning fingerprint (budgets, seed, held-out split) and, where they approximate, the same
    analysis: so the four recipes of a task fine-tune and analyze once."""
    from onnx_approx.pipeline.runner import fingerprint
    from onnx_approx.pipeline.steps import RunContext, recipe_steps

    groups: dict[str, dict[str, set[str]]] = {}
    for path in SHIPPED:
        recipe = load_recipe(path)
        recipe.data = dataclasses.replace(recipe.data, data_dir=str(shared_data))
        ctx = RunContext(recipe)
        steps = {s.name: s for s in recipe_steps(recipe)}
        found = groups.setdefault(recipe.task, {"finetune": set(), "analyze": set()})
        tuned = fingerprint("finetune", steps["finetune"].inputs(ctx), {}, "v")
        found["finetune"].add(tuned)
        if recipe.approximates:
            found["analyze"].add(fingerprint("analyze", steps["analyze"].inputs(ctx), {"finetune": tuned}, "v"))
    assert set(groups) == {"sst2", "cola-axformer", "rte-axformer"}
    for task, found in groups.items():
        assert len(found["finetune"]) == 1 and len(found["analyze"]) == 1, task
