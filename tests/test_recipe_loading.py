"""Recipe loading, unit by unit: the limits at their exact boundaries and every message a user reads, so that a
change to the code that guards a recipe fails a test (checked with mutmut; see the README's Development section)."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune.config import loading
from finetune.config.loading import (
    MAX_EXTENDS_DEPTH,
    MAX_RECIPE_BYTES,
    MAX_RECIPE_DEPTH,
    MAX_RECIPE_VALUES,
    deep_merge,
    find_recipe,
    load_recipe,
    parse_overrides,
    read_yaml,
    shipped_recipe_names,
    shipped_recipes_dir,
)
from finetune.errors import UserError


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_file_size_limit_is_exact(tmp_path):
    body = "task: classification\n"
    exact = write(tmp_path / "exact.yaml", "#" * (MAX_RECIPE_BYTES - len(body) - 1) + "\n" + body)
    assert exact.stat().st_size == MAX_RECIPE_BYTES and read_yaml(exact) == {"task": "classification"}
    over = write(tmp_path / "over.yaml", "#" * (MAX_RECIPE_BYTES - len(body)) + "\n" + body)
    with pytest.raises(UserError) as error:
        read_yaml(over)
    assert str(error.value) == (f"{over}: {MAX_RECIPE_BYTES + 1:,} bytes is too large for a recipe (limit "
                                f"{MAX_RECIPE_BYTES:,}). Is it the right file?")


def test_unreadable_files_name_the_problem(tmp_path):
    latin = write(tmp_path / "latin.yaml", "task: caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError) as error:
        read_yaml(latin)
    assert str(error.value) == f"{latin}: not UTF-8 text (invalid continuation byte at byte 9). Save it as UTF-8."
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(UserError) as error:
        read_yaml(folder)
    assert str(error.value) == f"{folder}: cannot read the recipe (Is a directory)."


def test_yaml_syntax_errors_give_line_and_column(tmp_path):
    broken = write(tmp_path / "broken.yaml", "task: classification\ntrain: {epochs: 1\n")
    with pytest.raises(UserError) as error:
        read_yaml(broken)
    message = str(error.value)
    assert message.startswith(f"{broken}: line 3, column 1: invalid YAML: ")
    assert message.endswith(". Fix the syntax and retry.")


def test_value_count_limit_is_exact(tmp_path):
    # The root mapping, its key and the list count too: 3 values besides the items.
    fits = write(tmp_path / "fits.yaml", "a: [" + ", ".join(["1"] * (MAX_RECIPE_VALUES - 3)) + "]\n")
    assert len(read_yaml(fits)["a"]) == MAX_RECIPE_VALUES - 3
    over = write(tmp_path / "over.yaml", "a: [" + ", ".join(["1"] * (MAX_RECIPE_VALUES - 2)) + "]\n")
    with pytest.raises(UserError) as error:
        read_yaml(over)
    assert str(error.value) == (f"{over}: the recipe expands to more than {MAX_RECIPE_VALUES:,} values (YAML "
                                f"aliases?). A recipe is a few keys; write it out without nested aliases.")


def test_nesting_limit_is_exact(tmp_path):
    # The root mapping is depth 0, its key and value depth 1; each list adds one.
    fits = write(tmp_path / "fits.yaml", "a: " + "[" * (MAX_RECIPE_DEPTH - 1) + "1" + "]" * (MAX_RECIPE_DEPTH - 1))
    assert read_yaml(fits)["a"] is not None
    over = write(tmp_path / "over.yaml", "a: " + "[" * MAX_RECIPE_DEPTH + "1" + "]" * MAX_RECIPE_DEPTH)
    with pytest.raises(UserError) as error:
        read_yaml(over)
    assert str(error.value) == (f"{over}: the recipe nests deeper than {MAX_RECIPE_DEPTH} levels. A recipe's "
                                f"sections are two levels deep; flatten it.")


def test_duplicate_keys_are_found_in_nested_sections(tmp_path):
    recipe = write(tmp_path / "dup.yaml", "train:\n  epochs: 1\n  seed: 3\n  epochs: 2\n")
    with pytest.raises(UserError, match=r"line 4, column 3: invalid YAML: duplicate key 'epochs' \(first on line 2\)"):
        read_yaml(recipe)


def test_extends_cycle_and_chain_limits(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(UserError) as error:
        load_recipe(tmp_path / "a.yaml")
    a, b = (tmp_path / "a.yaml").resolve(), (tmp_path / "b.yaml").resolve()
    chain = f"{a} -> {b} -> {a}"
    assert str(error.value) == f"{tmp_path / 'a.yaml'}: `extends` forms a cycle ({chain}). Remove one of the links."

    for index in range(MAX_EXTENDS_DEPTH):  # r0 extends r1 ... r19 extends r20 (the root, no extends)
        write(tmp_path / f"r{index}.yaml", f"extends: r{index + 1}.yaml\n")
    write(tmp_path / f"r{MAX_EXTENDS_DEPTH}.yaml", "task: classification\n")
    assert load_recipe(tmp_path / "r1.yaml").task == "classification"  # a chain of MAX_EXTENDS_DEPTH files
    with pytest.raises(UserError) as error:
        load_recipe(tmp_path / "r0.yaml")
    assert str(error.value).endswith(f"`extends` chain longer than {MAX_EXTENDS_DEPTH} recipes (starting at "
                                     f"{(tmp_path / 'r0.yaml').resolve()}). Shorten it.")

    odd = write(tmp_path / "odd.yaml", "extends: 5\n")
    with pytest.raises(UserError) as error:
        load_recipe(odd)
    assert str(error.value) == f"{odd}: `extends` takes one recipe name or path, got 5."


def test_extends_prefers_the_file_next_to_the_recipe(tmp_path, monkeypatch):
    (tmp_path / "recipes").mkdir()
    write(tmp_path / "recipes" / "base.yaml", "train:\n  seed: 7\n")
    write(tmp_path / "base.yaml", "train:\n  seed: 99\n")  # the same name in the working directory
    child = write(tmp_path / "recipes" / "child.yaml", "extends: base.yaml\n")
    monkeypatch.chdir(tmp_path)
    assert load_recipe(child).train.seed == 7
    assert find_recipe("base.yaml", relative_to=tmp_path / "recipes") == tmp_path / "recipes" / "base.yaml"


def test_deep_merge_never_shares_structure_with_its_inputs():
    base = {"train": {"epochs": 1}, "data": {"text_columns": ["a"]}}
    update = {"data": {"text_columns": ["b", "c"]}}
    merged = deep_merge(base, update)
    assert merged == {"train": {"epochs": 1}, "data": {"text_columns": ["b", "c"]}}
    merged["train"]["epochs"] = 5
    merged["data"]["text_columns"].append("d")
    assert base == {"train": {"epochs": 1}, "data": {"text_columns": ["a"]}}
    assert update == {"data": {"text_columns": ["b", "c"]}}


def test_overrides_parse_as_yaml_values():
    assert parse_overrides(["data.source_prefix=a=b"]) == {"data": {"source_prefix": "a=b"}}
    assert parse_overrides(["train.epochs="]) == {"train": {"epochs": None}}
    assert parse_overrides(["data.text_columns=[a, b]"]) == {"data": {"text_columns": ["a", "b"]}}
    assert parse_overrides(["description=[not closed"]) == {"description": "[not closed"}  # not YAML: the text
    # Text with ': ' in it is YAML for a mapping; an override means the text, as typed.
    assert parse_overrides(["data.source_prefix=translate English to German: "]) == {
        "data": {"source_prefix": "translate English to German: "}}
    assert parse_overrides(["data.system_prompt=Answer: yes or no"]) == {
        "data": {"system_prompt": "Answer: yes or no"}}
    assert parse_overrides(["a.b={x: 1}"]) == {"a": {"b": {"x": 1}}}  # braces: a mapping
    for bad in ("train.epochs", "=1", "train..epochs=1", ".epochs=1", "train.=1"):
        with pytest.raises(UserError) as error:
            parse_overrides([bad], "here")
        assert str(error.value) == f"here: override '{bad}' is not key=value (for example train.epochs=1)."
    with pytest.raises(UserError) as error:
        parse_overrides(["train=1", "train.epochs=2"], "here")
    assert str(error.value) == "here: override 'train.epochs=2' sets a key below a value that is not a section."


def test_unknown_keys_and_sections_name_what_is_valid():
    from finetune.config.schema import Recipe, TrainSection

    with pytest.raises(UserError) as error:
        load_recipe(overrides=["train.epoch=1"])
    assert str(error.value) == ("command-line overrides: unknown key 'train.epoch'. Did you mean 'epochs'? Valid keys "
                                f"in train: {', '.join(TrainSection.model_fields)}.")
    with pytest.raises(UserError) as error:
        load_recipe(overrides=["tsak=classification"])
    assert str(error.value) == ("command-line overrides: unknown key 'tsak'. Did you mean 'task'? Valid keys: "
                                f"{', '.join(Recipe.model_fields)}.")
    with pytest.raises(UserError) as error:
        load_recipe(overrides=["train=5"])
    assert str(error.value) == (f"command-line overrides: 'train' is a section with keys "
                                f"({', '.join(TrainSection.model_fields)}), not 5.")
    with pytest.raises(UserError) as error:
        load_recipe(overrides=["train.batch_size=lots"])
    assert str(error.value).endswith("(got 'lots')")


def test_shipped_recipes(tmp_path, monkeypatch):
    names = shipped_recipe_names()
    assert "glue/sst2" in names and not any(name.startswith("benchmarks/") for name in names)
    assert (shipped_recipes_dir() / "glue" / "sst2.yaml").is_file()
    assert shipped_recipes_dir() == Path(loading.__file__).resolve().parents[2] / "recipes"  # the checkout's
    write(tmp_path / "mine.yaml", "task: classification\n")
    monkeypatch.setenv("FINETUNE_RECIPES_DIR", str(tmp_path))
    assert shipped_recipes_dir() == tmp_path and shipped_recipe_names() == ["mine"]
    assert find_recipe("mine") == tmp_path / "mine.yaml"
