"""Loading a recipe: YAML files, `extends:` chains, command-line flags and `key=value` overrides, validated.

Layers apply in order: command defaults, a parent named by `extends:` (a path relative to the file, or the name of
a shipped recipe such as `glue/sst2`), the file itself, command-line flags, then dotted `key=value` overrides.
Unknown keys are errors that name the file and the closest valid key; values are checked by pydantic.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from finetune.config.schema import Recipe, canonical_keys
from finetune.errors import UserError, did_you_mean

# ----------------------------------------------------------------------------------------------------------------
# Finding and reading recipe files


def shipped_recipes_dir() -> Path:
    """The shipped recipes: finetune/recipes/ in an installed wheel, recipes/ of a source checkout (an editable
    install); FINETUNE_RECIPES_DIR overrides both."""
    if "FINETUNE_RECIPES_DIR" in os.environ:
        return Path(os.environ["FINETUNE_RECIPES_DIR"])
    package = Path(__file__).resolve().parents[1]
    packaged = package / "recipes"
    return packaged if packaged.is_dir() else package.parent / "recipes"


def shipped_recipe_names() -> list[str]:
    root = shipped_recipes_dir()
    # recipes/benchmarks/ holds benchmark suites for `finetune evaluate` (finetune/suites.py), not recipes.
    return sorted(str(path.relative_to(root).with_suffix("")) for path in root.rglob("*.yaml")
                  if path.relative_to(root).parts[0] != "benchmarks")


def find_recipe(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A recipe file from a path (absolute, or relative to `relative_to` / the working directory) or a shipped name."""
    raw = str(name_or_path)
    candidates = [Path(raw).expanduser()]
    if relative_to is not None:
        candidates.insert(0, relative_to / raw)
    root = shipped_recipes_dir()
    candidates += [root / raw, root / f"{raw}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(
        f"Recipe '{raw}' not found: it is neither a file nor a shipped recipe."
        f"{did_you_mean(raw, shipped_recipe_names())} See `finetune recipes list`."
    )


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}). Save it as UTF-8.") from error
    except OSError as error:
        raise UserError(f"{path}: cannot read the recipe ({error.strerror}).") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise UserError(f"{path}:{where}: invalid YAML: {problem}. Fix the syntax and retry.") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a mapping of keys (task:, model:, data:, train:), "
                        f"not a {type(data).__name__}.")
    return data


def _load_layers(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[str, dict[str, Any]]]:
    """The file and its `extends` ancestors as (source, mapping) pairs, oldest ancestor first."""
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise UserError(f"{path}: `extends` forms a cycle ({chain}). Remove one of the links.")
    data = read_yaml(path)
    parent = data.pop("extends", None)
    layers: list[tuple[str, dict[str, Any]]] = []
    if parent is not None:
        if not isinstance(parent, str):
            raise UserError(f"{path}: `extends` takes one recipe name or path, got {parent!r}.")
        try:
            parent_path = find_recipe(parent, relative_to=path.parent)
        except UserError as error:
            raise UserError(f"{path}: extends {error}") from error
        layers = _load_layers(parent_path, (*seen, resolved))
    layers.append((str(path), data))
    return layers


# ----------------------------------------------------------------------------------------------------------------
# Merging, overrides and validation


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` on top of `base`; nested mappings merge key by key, everything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_overrides(overrides: list[str], source: str = "command line") -> dict[str, Any]:
    """['train.epochs=1', 'data.text_columns=[a,b]'] -> nested dict; values are parsed as YAML scalars/lists."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw_value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise UserError(f"{source}: override '{item}' is not key=value (for example train.epochs=1).")
        try:
            value = yaml.safe_load(raw_value) if raw_value.strip() else None
        except yaml.YAMLError:
            value = raw_value
        target = nested
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise UserError(f"{source}: override '{item}' sets a key below a value that is not a section.")
        target[leaf] = value
    return nested


def _check_keys(data: dict[str, Any], schema: type[BaseModel], source: str, prefix: str = "") -> None:
    """Reject unknown keys, naming the source and the closest valid key (checked per layer, so the file is right)."""
    fields = schema.model_fields
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            valid = ", ".join(fields)
            raise UserError(
                f"{source}: unknown key '{dotted}'.{did_you_mean(str(key), fields)} "
                f"Valid keys{' in ' + prefix.rstrip('.') if prefix else ''}: {valid}."
            )
        annotation = fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not isinstance(value, dict):
                raise UserError(f"{source}: '{dotted}' is a section with keys ({', '.join(annotation.model_fields)}), "
                                f"not {value!r}.")
            _check_keys(value, annotation, source, f"{dotted}.")


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        lines.append(f"{source}: '{location}': {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def build_recipe(layers: list[tuple[str, dict[str, Any]]]) -> Recipe:
    """Merge (source, mapping) layers in order and validate the result."""
    merged: dict[str, Any] = {}
    for source, layer in layers:
        data, conflicts = canonical_keys(layer)  # per layer: a file's num_train_epochs overrides its parent's epochs
        if conflicts:
            raise UserError(f"{source}: {conflicts[0]}.")
        _check_keys(data, Recipe, source)
        merged = deep_merge(merged, data)
    try:
        return Recipe.model_validate(merged)
    except ValidationError as error:
        source = " + ".join(dict.fromkeys(source for source, _ in layers)) or "recipe"
        raise UserError(_format_validation_error(error, source)) from error


def load_recipe(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None, flags: dict[str, Any] | None = None) -> Recipe:
    """The recipe for a run: `base` defaults, then the file (with its parents), then CLI flags, then overrides."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if base:
        layers.append(("command defaults", base))
    if path is not None:
        layers += _load_layers(find_recipe(path))
    if flags:
        layers.append(("command-line flags", flags))
    if overrides:
        layers.append(("command-line overrides", parse_overrides(overrides)))
    return build_recipe(layers)
