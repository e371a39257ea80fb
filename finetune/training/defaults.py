"""The default learning rate: chosen from the model's size when the recipe sets none.

One rate for every model is wrong for most of them: 2e-5 (the BERT-base paper's) barely moves a 22M-parameter model
in a few hundred steps, while 1e-4 can make a 300M-parameter model diverge. The policy (measured in
benchmarks/quality.py, explained in the README's "Choosing hyper-parameters"):

| model (parameters)             | default learning rate |
|--------------------------------|-----------------------|
| under 50M (MiniLM, tiny BERTs) | 1e-4                  |
| 50M to 200M (BERT-base, GPT-2) | 5e-5                  |
| over 200M (large models)       | 2e-5                  |
| LoRA adapters (any base)       | 2e-4                  |

with a 10% linear warm-up, then linear decay. A rate the recipe sets is kept, and so is its schedule: without a
train.warmup_ratio it runs with none (transformers' default), exactly as before this policy existed, so a recipe
that chose its rate reproduces.
"""

from __future__ import annotations

from finetune.config.schema import Recipe

SMALL_MODEL = 50_000_000
LARGE_MODEL = 200_000_000
RATES = {"small": 1e-4, "base": 5e-5, "large": 2e-5, "lora": 2e-4}
DEFAULT_WARMUP = 0.1  # with the default rate


def default_learning_rate(total_parameters: int, lora: bool = False) -> float:
    """The learning rate for a model of `total_parameters` (all of them, before LoRA freezes any)."""
    if lora:
        return RATES["lora"]
    if total_parameters < SMALL_MODEL:
        return RATES["small"]
    if total_parameters <= LARGE_MODEL:
        return RATES["base"]
    return RATES["large"]


def with_default_learning_rate(recipe: Recipe, total_parameters: int) -> Recipe:
    """`recipe` with train.learning_rate (by model size) and train.warmup_ratio (0.1 with the default rate, 0 with
    the recipe's own) filled in where it sets none."""
    train = recipe.train
    update: dict[str, float] = {}
    if train.learning_rate is None:
        update["learning_rate"] = default_learning_rate(total_parameters, recipe.peft.enabled)
    if train.warmup_ratio is None:
        update["warmup_ratio"] = DEFAULT_WARMUP if train.learning_rate is None else 0.0
    if not update:
        return recipe
    return recipe.model_copy(update={"train": train.model_copy(update=update)})
