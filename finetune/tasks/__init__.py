"""The task registry: every task family finetune knows, and the one place that maps a task name to its code.

A family module declares its `FAMILIES` (see base.TaskFamily); the tuple below lists the modules, explicitly (no
discovery). `register` adds one more at run time (a plug-in, or the test that proves a new family needs nothing
outside its own module). Task modules import transformers only inside functions, so the CLI can build its commands
from this registry without paying for torch at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finetune.errors import UserError, did_you_mean
from finetune.tasks import causal_lm, classification, multi_label, seq2seq, token_classification
from finetune.tasks.base import Task, TaskFamily

if TYPE_CHECKING:
    from finetune.config.schema import Recipe

_FAMILIES: dict[str, TaskFamily] = {}


def register(family: TaskFamily) -> TaskFamily:
    """Add a task family; its name and command must be new."""
    for known in _FAMILIES.values():
        if known is not family and (known.name == family.name or known.command == family.command):
            raise ValueError(f"task family {family.name!r} (command {family.command!r}) clashes with {known.name!r}")
    _FAMILIES[family.name] = family
    return family


assert classification.ClassificationTask.multi_label_task is multi_label.MultiLabelClassificationTask  # label lists

for _module in (classification, token_classification, seq2seq, causal_lm):
    for _family in _module.FAMILIES:
        register(_family)


def families() -> list[TaskFamily]:
    return list(_FAMILIES.values())


def get_family(name: str) -> TaskFamily:
    family = _FAMILIES.get(name)
    if family is None:
        raise UserError(f"Unknown task '{name}'.{did_you_mean(name, _FAMILIES)} Tasks: {', '.join(_FAMILIES)}.")
    return family


def complete(recipe: Recipe) -> Recipe:
    """Check the recipe's task name and fill in the task's default model; returns the same recipe."""
    family = get_family(recipe.task)
    if recipe.model.name is None:
        recipe.model.name = family.default_model
    return recipe


def get_task(recipe: Recipe) -> Task:
    family = get_family(complete(recipe).task)
    return family.task_class(recipe, family)


def family_of_model(architecture: str | None, peft_task_type: str | None = None) -> TaskFamily | None:
    """The family a saved model belongs to, from its class name (BertForSequenceClassification) or, for a LoRA
    adapter, PEFT's task type; the first registered family wins where several share a kind (summarization)."""
    for family in _FAMILIES.values():
        if architecture and architecture.endswith(family.architectures or ("\0",)):
            return family
    for family in _FAMILIES.values():
        if peft_task_type and family.peft_task_type == peft_task_type:
            return family
    return None


def family_of_dataset(dataset: str | None) -> TaskFamily | None:
    """The family a benchmark dataset is scored with when the benchmark does not say (glue/ -> classification)."""
    name = (dataset or "").lower()
    return next((family for family in _FAMILIES.values()
                 if family.benchmark_datasets and name.startswith(family.benchmark_datasets)), None)
