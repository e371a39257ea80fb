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
from finetune.errors import UserError, did_you_mean, preview, shorten

# Limits on a recipe, so a hostile or broken file fails in one line instead of hanging or eating memory: a
# recipe is a few kilobytes; an alias bomb is a small file whose aliases expand to billions of values.
MAX_RECIPE_BYTES = 1_000_000
MAX_RECIPE_VALUES = 100_000  # after alias expansion
MAX_RECIPE_DEPTH = 32  # nesting of mappings and lists
MAX_EXTENDS_DEPTH = 20  # length of an `extends` chain

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


class _RecipeLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML keeps the last one silently, dropping a whole `train:` block)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:
                continue  # an unhashable key: SafeLoader's own error says so
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {preview(key)} (first on line {first})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _check_size(data: Any, path: Path) -> None:
    """Count values as if aliases were expanded, stopping at the limits (cheap even for a billion-value bomb)."""
    budget = MAX_RECIPE_VALUES
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise UserError(f"{path}: the recipe expands to more than {MAX_RECIPE_VALUES:,} values (YAML aliases?). "
                            f"A recipe is a few keys; write it out without nested aliases.")
        if depth > MAX_RECIPE_DEPTH:
            raise UserError(f"{path}: the recipe nests deeper than {MAX_RECIPE_DEPTH} levels. A recipe's sections "
                            f"are two levels deep; flatten it.")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for pair in value.items() for item in pair)
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise UserError(f"{path}: {path.stat().st_size:,} bytes is too large for a recipe (limit "
                            f"{MAX_RECIPE_BYTES:,}). Is it the right file?")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}). Save it as UTF-8.") from error
    except OSError as error:
        raise UserError(f"{path}: cannot read the recipe ({error.strerror}).") from error
    try:
        data = yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader subclass: no Python objects
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise UserError(f"{path}:{where}: invalid YAML: {shorten(problem)}. Fix the syntax and retry.") from error
    except RecursionError as error:
        raise UserError(f"{path}: the recipe nests too deeply to read. A recipe's sections are two levels deep; "
                        f"flatten it.") from error
    _check_size(data, path)
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
        raise UserError(f"{path}: `extends` forms a cycle ({shorten(chain, 400)}). Remove one of the links.")
    if len(seen) >= MAX_EXTENDS_DEPTH:
        raise UserError(f"{path}: `extends` chain longer than {MAX_EXTENDS_DEPTH} recipes (starting at {seen[0]}). "
                        f"Shorten it.")
    data = read_yaml(path)
    parent = data.pop("extends", None)
    layers: list[tuple[str, dict[str, Any]]] = []
    if parent is not None:
        if not isinstance(parent, str):
            raise UserError(f"{path}: `extends` takes one recipe name or path, got {preview(parent)}.")
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
    """['train.epochs=1', 'data.text_columns=[a,b]'] -> nested dict; values are parsed as YAML scalars/lists
    (mappings only in {} braces: 'Question: ' stays text)."""
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
        if isinstance(value, dict) and not raw_value.lstrip().startswith("{"):
            # 'translate English to German: ' is YAML for a mapping; a key=value override means the text
            # (a mapping is written as {key: value}).
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
                f"{source}: unknown key {preview(dotted)}.{did_you_mean(str(key)[:100], fields)} "
                f"Valid keys{' in ' + prefix.rstrip('.') if prefix else ''}: {valid}."
            )
        annotation = fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not isinstance(value, dict):
                raise UserError(f"{source}: '{dotted}' is a section with keys ({', '.join(annotation.model_fields)}), "
                                f"not {preview(value)}.")
            _check_keys(value, annotation, source, f"{dotted}.")


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        lines.append(f"{source}: '{preview(location)}': {item['msg']} (got {preview(item.get('input'))})")
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
        parsed = parse_overrides(overrides)
        _check_size(parsed, Path("command-line overrides"))
        layers.append(("command-line overrides", parsed))
    return build_recipe(layers)
