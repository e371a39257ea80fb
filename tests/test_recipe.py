"""Recipes: extends, overrides, unknown keys, types, and every shipped recipe validates."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune.config.loading import deep_merge, load_recipe, parse_overrides, shipped_recipe_names
from finetune.config.schema import Recipe
from finetune.errors import UserError


def write(path, data) -> str:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


@pytest.mark.parametrize("name", shipped_recipe_names())
def test_every_shipped_recipe_validates_and_opens_with_its_command(name):
    from finetune.config.loading import find_recipe

    path = find_recipe(name)
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe)
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# finetune "), f"{path} must open with the command that runs it"
    assert recipe.description, f"{path} needs a description"


def test_shipped_glue_recipes_cover_all_nine_tasks():
    glue = {name.split("/")[1] for name in shipped_recipe_names() if name.startswith("glue/")}
    assert glue == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"}


def test_extends_relative_path_deep_merges(tmp_path):
    write(tmp_path / "base.yaml", {"model": {"name": "roberta-base"}, "train": {"epochs": 5, "batch_size": 8}})
    child = write(tmp_path / "child.yaml", {"extends": "base.yaml", "train": {"epochs": 1}})
    recipe = load_recipe(child)
    assert recipe.model.name == "roberta-base"
    assert (recipe.train.epochs, recipe.train.batch_size) == (1, 8)


def test_extends_a_shipped_recipe_by_name(tmp_path):
    child = write(tmp_path / "mine.yaml", {"extends": "glue/rte", "train": {"learning_rate": 1e-5}})
    recipe = load_recipe(child, ["data.max_length=64"])
    assert recipe.data.dataset == "glue/rte" and recipe.train.learning_rate == 1e-5 and recipe.data.max_length == 64


def test_extends_cycle_and_missing_parent(tmp_path):
    write(tmp_path / "a.yaml", {"extends": "b.yaml"})
    write(tmp_path / "b.yaml", {"extends": "a.yaml"})
    with pytest.raises(UserError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")
    write(tmp_path / "orphan.yaml", {"extends": "nowhere.yaml"})
    with pytest.raises(UserError, match="nowhere.yaml"):
        load_recipe(tmp_path / "orphan.yaml")


def test_overrides_are_typed():
    recipe = load_recipe(overrides=["train.epochs=2", "train.learning_rate=1e-4", "data.text_columns=[a, b]",
                                    "model.trust_remote_code=true", "data.dataset=glue/sst2"])
    assert recipe.train.epochs == 2.0 and recipe.train.learning_rate == 1e-4
    assert recipe.data.text_columns == ["a", "b"] and recipe.model.trust_remote_code is True


def test_unknown_key_names_the_file_and_the_closest_key(tmp_path):
    path = write(tmp_path / "typo.yaml", {"data": {"max_lenght": 64}})
    with pytest.raises(UserError) as error:
        load_recipe(path)
    assert str(tmp_path / "typo.yaml") in str(error.value)
    assert "data.max_lenght" in str(error.value) and "Did you mean 'max_length'" in str(error.value)


def test_unknown_key_in_a_parent_names_the_parent(tmp_path):
    write(tmp_path / "base.yaml", {"trian": {"epochs": 1}})
    child = write(tmp_path / "child.yaml", {"extends": "base.yaml"})
    with pytest.raises(UserError, match=r"base\.yaml.*Did you mean 'train'"):
        load_recipe(child)


def test_wrong_type_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="train.batch_size"):
        load_recipe(overrides=["train.batch_size=lots"])
    with pytest.raises(UserError, match=r"broken.yaml: line \d+, column \d+: invalid YAML"):
        load_recipe(write(tmp_path / "broken.yaml", "task: classification\nmodel: [unclosed\n"))
    with pytest.raises(UserError, match="not key=value"):
        parse_overrides(["train.epochs"])


def test_default_model_follows_the_task():
    from finetune.tasks import complete

    assert complete(load_recipe()).model.name == "bert-base-uncased"
    assert complete(load_recipe(overrides=["task=generation"])).model.name == "gpt2"
    assert complete(load_recipe(overrides=["model.name=my/model"])).model.name == "my/model"


def test_an_unknown_task_names_the_known_ones():
    from finetune.tasks import complete

    with pytest.raises(UserError, match="Unknown task 'clasification'. Did you mean 'classification'"):
        complete(load_recipe(overrides=["task=clasification"]))


def test_resolved_recipe_round_trips(tmp_path):
    recipe = load_recipe("glue/mrpc", ["train.epochs=1", "data.data_dir=/data"])
    again = load_recipe(write(tmp_path / "resolved.yaml", recipe.to_yaml()))
    assert again == recipe


def test_deep_merge_keeps_base_untouched():
    base = {"train": {"epochs": 3, "seed": 1}}
    merged = deep_merge(base, {"train": {"epochs": 1}})
    assert merged == {"train": {"epochs": 1, "seed": 1}} and base == {"train": {"epochs": 3, "seed": 1}}


_keys = st.sampled_from(["train.epochs", "train.seed", "data.max_length", "model.name", "data.text_columns",
                         "train.batch_size", "trian.epochs", "data", "train.epochs.x", "", "task", "peft.r"])
_values = st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=12), st.booleans(),
                    st.lists(st.text(max_size=5), max_size=3))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_keys, _values), max_size=4))
def test_any_override_gives_a_recipe_or_a_user_error(pairs):
    overrides = [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
                 for key, value in pairs]
    try:
        assert isinstance(load_recipe(overrides=overrides), Recipe)
    except UserError:
        pass


def test_readme_documents_every_recipe_key():
    from pathlib import Path

    from pydantic import BaseModel

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()

    def keys(model, prefix=""):
        for name, field in model.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                yield from keys(field.annotation, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    missing = [key for key in keys(Recipe) if f"`{key}`" not in readme]
    assert not missing, f"README's recipe reference lacks {missing}"
