"""The search space of a sweep: `key=loguniform(1e-5,1e-3)` specs, the default space, and trial suggestions.

A spec names a recipe key (dotted, as in overrides) and a distribution:

    loguniform(LOW,HIGH)   a float, uniform on a log scale (learning rates)
    uniform(LOW,HIGH)      a float
    int(LOW,HIGH)          an integer, both ends included
    choice(A,B,...)        one of the values (YAML scalars: 16, 0.01, cosine, true)

Anything else is a fixed value (`train.epochs=2`): set in every trial, not searched. Pure Python: no optuna import
until a trial asks for values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from finetune.errors import UserError

SPEC_HELP = ("loguniform(LOW,HIGH), uniform(LOW,HIGH), int(LOW,HIGH) or choice(A,B,...), for example "
             "train.learning_rate=loguniform(1e-5,1e-3)")
_SPEC = re.compile(r"^\s*(loguniform|uniform|int|choice)\s*\((.*)\)\s*$", re.IGNORECASE)

# Searched when neither --param nor the recipe's sweep.params says otherwise: the settings that matter most for
# fine-tuning, over ranges that hold good values for every model size (the default policies of training/defaults.py
# sit inside: the rate by model size, batch 8-32 and 3 or 6 epochs by training-set size).
DEFAULT_SPACE: dict[str, str] = {
    "train.learning_rate": "loguniform(1e-5,3e-4)",
    "train.batch_size": "choice(8,16,32)",
    "train.epochs": "int(2,6)",
    "train.warmup_ratio": "uniform(0.0,0.2)",
    "train.weight_decay": "choice(0.0,0.01,0.1)",
}
# Encoder-decoder models (T5, BART) fine-tune best at higher rates than encoders (their shipped recipes use 3e-4).
SEQ2SEQ_SPACE: dict[str, str] = {**DEFAULT_SPACE, "train.learning_rate": "loguniform(5e-5,1e-3)"}


@dataclass(frozen=True)
class Param:
    """One searched (or fixed) recipe key."""

    key: str
    kind: str  # loguniform, uniform, int, choice, fixed
    values: tuple[Any, ...]

    def describe(self) -> str:
        if self.kind == "fixed":
            return repr(self.values[0])
        return f"{self.kind}({','.join(str(value) for value in self.values)})"

    def suggest(self, trial: Any) -> Any:
        """This parameter's value for an Optuna trial."""
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.values))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.values[0]), int(self.values[1]))
        return trial.suggest_float(self.key, float(self.values[0]), float(self.values[1]),
                                   log=self.kind == "loguniform")


def _scalar(text: str, where: str) -> Any:
    for number in (int, float):  # YAML 1.1 reads 1e-5 (no dot) as a string
        try:
            return number(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UserError(f"{where}: cannot read {text!r} as a value.") from error


def parse_param(key: str, spec: Any, source: str = "--param") -> Param:
    """`key` searched as `spec` says (a distribution, or a fixed value)."""
    key = key.strip()
    if not key or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
        raise UserError(f"{source}: '{key}' is not a recipe key; give a dotted key such as train.learning_rate.")
    where = f"{source} {key}"
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        if isinstance(spec, str) and "(" in spec:
            raise UserError(f"{where}: cannot read '{spec}'; use {SPEC_HELP}.")
        return Param(key, "fixed", (_scalar(spec, where) if isinstance(spec, str) else spec,))
    kind = match.group(1).lower()
    values = tuple(_scalar(part.strip(), where) for part in match.group(2).split(",") if part.strip())
    if kind == "choice":
        if not values:
            raise UserError(f"{where}: choice() needs at least one value.")
        if any(isinstance(value, (list, dict)) for value in values):
            raise UserError(f"{where}: choice() takes plain values (numbers, words, true/false).")
        return Param(key, kind, values)
    if len(values) != 2 or not all(isinstance(value, (int, float)) and not isinstance(value, bool)
                                   for value in values):
        raise UserError(f"{where}: {kind}() takes two numbers, LOW and HIGH, e.g. {kind}(1,4).")
    low, high = values
    if low > high:
        raise UserError(f"{where}: {kind}({low},{high}) has LOW above HIGH; swap them.")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"{where}: loguniform() needs LOW above 0 (a log scale); got {low}.")
    if kind == "int" and (int(low) != low or int(high) != high):
        raise UserError(f"{where}: int() takes whole numbers; got {low},{high}.")
    return Param(key, kind, (low, high))


def parse_cli_params(specs: list[str]) -> dict[str, Param]:
    """--param KEY=SPEC options, in order (a later one for the same key wins)."""
    params: dict[str, Param] = {}
    for spec in specs:
        if "=" not in spec:
            raise UserError(f"--param '{spec}': give KEY=SPEC, for example {SPEC_HELP.split('for example ')[1]}.")
        key, value = spec.split("=", 1)
        param = parse_param(key, value)
        params[param.key] = param
    return params


def search_space(recipe_params: dict[str, Any], cli_params: dict[str, Param], seq2seq: bool = False) -> list[Param]:
    """The space a sweep searches: the default space (encoder-decoder models: higher learning rates), then the
    recipe's sweep.params, then the --param options, a later one replacing an earlier one key by key. A fixed value
    (train.epochs=1) takes a key out of the search."""
    defaults = SEQ2SEQ_SPACE if seq2seq else DEFAULT_SPACE
    space = {key: parse_param(key, spec, "default space") for key, spec in defaults.items()}
    space.update({key: parse_param(key, spec, "sweep.params") for key, spec in recipe_params.items()})
    space.update(cli_params)
    return list(space.values())


def nested(values: dict[str, Any]) -> dict[str, Any]:
    """{'train.epochs': 2} -> {'train': {'epochs': 2}}: a recipe layer."""
    layer: dict[str, Any] = {}
    for key, value in values.items():
        *sections, leaf = key.split(".")
        holder = layer
        for section in sections:
            holder = holder.setdefault(section, {})
        holder[leaf] = value
    return layer
