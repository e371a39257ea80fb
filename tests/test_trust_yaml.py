"""Whole YAML documents (issue 13): any document, well-formed or not, gives a Recipe or a UserError whose message
is short; never another exception, a hang or a huge error line."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finetune.config.loading import load_recipe
from finetune.config.schema import Recipe
from finetune.errors import UserError

_KEYS = st.sampled_from(["task", "model", "data", "train", "generation", "peft", "distributed", "output_dir",
                         "extends", "name", "epochs", "seed", "max_length", "train_file", "text_columns", "r",
                         "enabled", "learning_rate", "trian", "<<", "description"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=30))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=20)
_DOCUMENTS = st.dictionaries(_KEYS, _VALUES, max_size=6)


def _load(tmp_path, text: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        assert isinstance(load_recipe(path), Recipe)
    except UserError as error:
        assert all(len(line) < 1500 for line in str(error).splitlines()), str(error)[:300]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_DOCUMENTS)
def test_any_document_gives_a_recipe_or_a_user_error(tmp_path, document):
    _load(tmp_path, yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_DOCUMENTS, st.integers(0, 400), st.text(alphabet="&*[]{}:,-!|>'\"#%@` \n\t", min_size=1, max_size=6))
def test_any_mangled_document_gives_a_recipe_or_a_user_error(tmp_path, document, position, noise):
    text = yaml.safe_dump(document, allow_unicode=True)
    position = min(position, len(text))
    _load(tmp_path, text[:position] + noise + text[position:])


def test_a_duplicate_key_names_its_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("task: classification\ntrain:\n  epochs: 1\n  seed: 2\ntrain:\n  epochs: 3\n")
    try:
        load_recipe(path)
    except UserError as error:
        assert "line 5" in str(error) and "duplicate key 'train' (first on line 2)" in str(error)
    else:
        raise AssertionError("a duplicate key was accepted")


def test_merge_keys_are_not_duplicates(tmp_path):
    """`<<:` merges are YAML's way to reuse a block; a key set after one overrides it, as YAML says."""
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  <<: {epochs: 1, seed: 3}\n  seed: 4\n")
    recipe = load_recipe(path)
    assert recipe.train.seed == 4 and recipe.train.epochs == 1
