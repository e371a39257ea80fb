"""The default learning rate, batch size and epochs: chosen from the model's size and the training set's when the
recipe sets none.

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

The batch size: 32, unless the training set is too small for an epoch of at least 50 optimizer steps at 32; then 16,
or 8 (the smallest). Few steps, not few examples, is what keeps a small-data run from learning. all-MiniLM-L6-v2 on
512 examples (3 epochs; benchmarks/RESULTS.md, 3 seeds each): SST-2 dev accuracy 0.773 with batch 32 (48 steps),
0.791 with 16 (96), 0.787 with 8 (192); STS-B Pearson 0.457 with 16, 0.611 with 8. With train.max_steps the run's
length is set in steps, so the batch stays 32.

The epochs: 3, but 6 for classification on a set too small for batch 32 (under 1,600 examples on one device), the
longer training that small-data fine-tuning studies recommend (Mosbach et al. 2021, Zhang et al. 2021: too few
updates, not overfitting, is what fails on small sets; finetune keeps the best epoch's checkpoint). SST-2, 512
examples, batch 8, seeds 42-44: 0.787 after 3 epochs, 0.810 after 6, 0.795 after 10; CoLA (Matthews) 0.009, 0.051,
0.058. Other tasks were not measured to gain (a small language-model set can overfit instead), so they keep 3.
"""

from __future__ import annotations

from finetune.config.schema import Recipe

SMALL_MODEL = 50_000_000
LARGE_MODEL = 200_000_000
RATES = {"small": 1e-4, "base": 5e-5, "large": 2e-5, "lora": 2e-4}
DEFAULT_WARMUP = 0.1  # with the default rate
BATCH_SIZES = (32, 16, 8)  # the default, then smaller ones for small training sets
MIN_STEPS_PER_EPOCH = 50
DEFAULT_EPOCHS = 3.0
SMALL_SET_EPOCHS = 6.0  # for classification on a training set the batch rule shrinks the batch for
LONGER_ON_SMALL_SETS = ("classification",)  # the task measured (5 GLUE tasks); generation can overfit instead


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


def default_batch_size(train_examples: int, processes: int = 1, accumulation: int = 1) -> int:
    """The largest of BATCH_SIZES (per device) giving an epoch of at least MIN_STEPS_PER_EPOCH optimizer steps;
    the smallest when none does."""
    for size in BATCH_SIZES:
        if train_examples / (size * max(1, processes) * max(1, accumulation)) >= MIN_STEPS_PER_EPOCH:
            return size
    return BATCH_SIZES[-1]


def default_epochs(task: str, train_examples: int, processes: int = 1, accumulation: int = 1) -> float:
    """DEFAULT_EPOCHS, or SMALL_SET_EPOCHS for a classification training set too small for batch 32 (the sets the
    batch rule shrinks the batch for)."""
    small = default_batch_size(train_examples, processes, accumulation) < BATCH_SIZES[0]
    return SMALL_SET_EPOCHS if small and task in LONGER_ON_SMALL_SETS else DEFAULT_EPOCHS


def with_default_batch_and_epochs(recipe: Recipe, train_examples: int | None, processes: int = 1) -> Recipe:
    """`recipe` with train.batch_size and train.epochs filled in where it sets none (see default_batch_size and
    default_epochs; batch 32 and 3 epochs with max_steps or an unknown number of examples). The evaluation batch
    stays 2 x 32 then: a small training set is no reason to evaluate in smaller batches."""
    train = recipe.train
    sized = None if train.max_steps else train_examples  # with max_steps the run's length is set in steps
    update: dict[str, float] = {}
    if train.batch_size is None:
        update["batch_size"] = (BATCH_SIZES[0] if sized is None
                                else default_batch_size(sized, processes, train.gradient_accumulation_steps))
        update["eval_batch_size"] = train.eval_batch_size or 2 * BATCH_SIZES[0]
    if train.epochs is None:
        update["epochs"] = (DEFAULT_EPOCHS if sized is None
                            else default_epochs(recipe.task, sized, processes, train.gradient_accumulation_steps))
    if not update:
        return recipe
    return recipe.model_copy(update={"train": train.model_copy(update=update)})
