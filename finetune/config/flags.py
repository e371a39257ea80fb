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

from finetune.config.schema import HF_NAMES, Recipe

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
    ("train.early_stopping_patience", None),
    ("train.early_stopping_threshold", None),
    ("output_dir", None),
    ("peft.enabled", "--lora"),
    ("train.resume", "--resume"),
    ("train.mixed_precision", None),
    ("train.gradient_accumulation_steps", None),
    ("train.gradient_checkpointing", None),
    ("train.auto_find_batch_size", "--auto-batch-size"),
    ("train.report_to", None),
    ("push_to_hub", None),
)
# Flags that set a key to a fixed value or read it another way, under the names transformers' example scripts use:
# (recipe key, flag name, value the switch sets or None for a valued flag, value type).
HF_FLAGS: tuple[tuple[str, str, str | None, type], ...] = (
    ("train.mixed_precision", "--bf16", "bf16", bool),
    ("train.mixed_precision", "--fp16", "fp16", bool),
    ("train.resume", "--resume_from_checkpoint", None, str),
)


@dataclass(frozen=True)
class FlagSpec:
    key: str  # dotted recipe key: train.epochs
    name: str  # --epochs
    help: str
    value_type: type  # str, int, float or bool (bool: a switch)
    repeatable: bool = False  # a list key: give the flag once per item
    default: str | None = None  # the schema's default as help shows it; None: nothing to show
    aliases: tuple[str, ...] = ()  # other names for the same flag: transformers' (--num_train_epochs)
    constant: str | None = None  # a switch that sets the key to this value (--bf16: mixed_precision=bf16)

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
    leaf = key.rsplit(".", 1)[-1]
    flag = name or "--" + leaf.replace("_", "-")
    return FlagSpec(key, flag, text, value_type, repeatable, shown, hf_flag_names(key, flag))


def hf_flag_names(key: str, flag: str) -> tuple[str, ...]:
    """The names users type for `key` from transformers' scripts: its HF names (--num_train_epochs), and the
    underscore spelling of a flag named after its key (--learning_rate for --learning-rate)."""
    leaf = key.rsplit(".", 1)[-1]
    names = ["--" + alias.rsplit(".", 1)[-1] for alias, target in HF_NAMES.items() if target == key]
    if flag == "--" + leaf.replace("_", "-"):
        names.append("--" + leaf)
    return tuple(name for name in dict.fromkeys(names) if name != flag)


def hf_flags() -> list[FlagSpec]:
    """--bf16, --fp16, --resume_from_checkpoint PATH: transformers' spellings that are not a plain alias."""
    specs = []
    for key, name, constant, value_type in HF_FLAGS:
        text = (f"Same as {key}={constant} (transformers' name)." if constant
                else f"Same as {key}=VALUE (transformers' name).")
        specs.append(FlagSpec(key, name, text, value_type, constant=constant))
    return specs


def common_flags(model_default: str | None = None) -> list[FlagSpec]:
    return [flag_spec(key, name, default=model_default if key == "model.name" else None)
            for key, name in COMMON_FLAGS]


def flag_values(flags: list[FlagSpec], values: dict[str, Any]) -> dict[str, Any]:
    """{recipe key: value} of the flags given (`values` by parameter name); a switch gives its constant."""
    given: dict[str, Any] = {}
    for flag in flags:
        value = values.get(flag.parameter)
        if value is None or value == [] or (flag.constant is not None and not value):
            continue
        given[flag.key] = flag.constant if flag.constant is not None else value
    return given


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
