"""Task registry: one module per task family, listed explicitly (no discovery)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from finetune.config.recipe import Recipe
    from finetune.tasks.base import Task


def get_task(recipe: Recipe) -> Task:
    # Imported here: each task module pulls in transformers, which the CLI must not import at start-up.
    if recipe.task == "classification":
        from finetune.tasks.classification import ClassificationTask

        return ClassificationTask(recipe)
    if recipe.task in ("summarization", "translation"):
        from finetune.tasks.seq2seq import Seq2SeqTask

        return Seq2SeqTask(recipe)
    if recipe.task == "generation":
        from finetune.tasks.causal_lm import CausalLMTask

        return CausalLMTask(recipe)
    raise ValueError(f"unknown task {recipe.task!r}")  # the recipe schema already rejects unknown tasks
