"""Command-line flags of the training commands, derived from the recipe schema.

Each flag is a recipe key: its type, help and default come from the schema's field (see schema.py), so a flag
cannot drift from the key it sets. `COMMON_FLAGS` are shared by every training command (classify, summarize, ...);
a task family adds its own (tasks/<family>.py) by key, optionally with another flag name or help.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from finetune.config.schema import Recipe

# (recipe key, flag name when it is not --<last part of the key>), in the order --help lists them.
COMMON_FLAGS: tuple[tuple[str, str | None], ...] = (
    ("model.name", "--model"),
    ("data.dataset", None),
    ("data.config", "--dataset-config"),
    ("data.train_file", None),
    ("data.validation_file", None),
    ("data.test_file", None),
    ("train.epochs", None),
    ("train.max_steps", None),
    ("train.learning_rate", None),
    ("train.batch_size", None),
    ("train.seed", None),
    ("data.max_train_samples", None),
    ("data.max_eval_samples", None),
    ("output_dir", None),
    ("peft.enabled", "--lora"),
    ("train.resume", "--resume"),
    ("train.mixed_precision", None),
    ("train.gradient_accumulation_steps", None),
    ("train.gradient_checkpointing", None),
    ("train.auto_find_batch_size", "--auto-batch-size"),
)


@dataclass(frozen=True)
class FlagSpec:
    key: str  # dotted recipe key: train.epochs
    name: str  # --epochs
    help: str
    value_type: type  # str, int, float or bool (bool: a switch)
    repeatable: bool = False  # a list key: give the flag once per item
    default: str | None = None  # the schema's default as help shows it; None: nothing to show

    @property
    def parameter(self) -> str:
        """The Python parameter name: --max-source-length -> max_source_length."""
        return self.name.lstrip("-").replace("-", "_")


def schema_field(key: str) -> FieldInfo:
    """The schema field behind a dotted recipe key."""
    model: type[BaseModel] = Recipe
    *sections, leaf = key.split(".")
    for section in sections:
        annotation = model.model_fields[section].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel), f"{section} is not a section"
        model = annotation
    return model.model_fields[leaf]


def _value_type(annotation: Any) -> tuple[type, bool, tuple[str, ...]]:
    """(scalar type, is a list, Literal choices) of a field annotation such as `int | None` or `list[str] | None`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if bool in members:  # `bool | str` (train.resume): the flag is the switch; named values go by key=value
            return bool, False, ()
        return _value_type(members[0])
    if origin is list:
        scalar, _, choices = _value_type(typing.get_args(annotation)[0])
        return scalar, True, choices
    if origin is Literal:
        return str, False, tuple(str(choice) for choice in typing.get_args(annotation))
    return annotation, False, ()


def format_default(value: Any) -> str | None:
    """A default as help text shows it, or None when there is nothing to show."""
    if value is None or value == [] or value is False:
        return None
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def flag_spec(key: str, name: str | None = None, help: str | None = None, default: Any = None) -> FlagSpec:
    """The flag for recipe key `key`; `default` replaces the schema's in the help (a task's default model)."""
    field = schema_field(key)
    value_type, repeatable, choices = _value_type(field.annotation)
    text = help or field.description or ""
    if choices and not help:
        text = f"{text} ({', '.join(choices)})"
    shown = format_default(default if default is not None else field.get_default(call_default_factory=True))
    if value_type is bool:
        shown = None  # a switch: off unless given
    if shown is not None:
        # Plain words, not "[default: x]": Typer's rich help would read the brackets as markup.
        if "Default:" in text and default is not None:
            text = text[:text.index("Default:")].rstrip()
        if "Default:" not in text:
            text = f"{text} Default: {shown}."
    if repeatable and not help:
        text = f"{text} Repeatable."
    flag = name or "--" + key.rsplit(".", 1)[-1].replace("_", "-")
    return FlagSpec(key, flag, text, value_type, repeatable, shown)


def common_flags(model_default: str | None = None) -> list[FlagSpec]:
    return [flag_spec(key, name, default=model_default if key == "model.name" else None)
            for key, name in COMMON_FLAGS]


def nest(values: dict[str, Any]) -> dict[str, Any]:
    """{'train.epochs': 1, 'data.dataset': None} -> {'train': {'epochs': 1}}: only the values that were given."""
    nested: dict[str, Any] = {}
    for dotted, value in values.items():
        if value is None or value == []:
            continue
        *sections, leaf = dotted.split(".")
        target = nested
        for section in sections:
            target = target.setdefault(section, {})
        target[leaf] = value
    return nested
