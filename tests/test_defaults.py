"""The default learning rate follows the model's size, the default batch size and epochs the training set's
(training/defaults.py); a value the user sets is kept."""

from __future__ import annotations

import json

import pytest
import yaml

from finetune.config.loading import load_recipe
from finetune.training.defaults import (
    default_batch_size,
    default_epochs,
    default_learning_rate,
    with_default_batch_and_epochs,
    with_default_learning_rate,
)
from tests.helpers import write_csv


@pytest.mark.parametrize(("parameters", "lora", "rate"), [
    (22_700_000, False, 1e-4),  # all-MiniLM-L6-v2
    (49_999_999, False, 1e-4),
    (50_000_000, False, 5e-5),
    (110_000_000, False, 5e-5),  # bert-base
    (200_000_000, False, 5e-5),
    (335_000_000, False, 2e-5),  # bert-large
    (335_000_000, True, 2e-4),  # LoRA adapters on any base
])
def test_the_default_learning_rate_falls_with_model_size(parameters, lora, rate):
    assert default_learning_rate(parameters, lora) == rate


@pytest.mark.parametrize(("overrides", "rate", "warmup"), [
    ([], 1e-4, 0.1),  # the policy: the size's rate, warmed up over 10% of the steps
    (["train.learning_rate=3e-5"], 3e-5, 0.0),  # the user's rate, and the schedule it always had (no warm-up)
    (["train.learning_rate=3e-5", "train.warmup_ratio=0.06"], 3e-5, 0.06),
    (["train.warmup_ratio=0"], 1e-4, 0.0),  # the size's rate, the user's warm-up
])
def test_values_the_user_sets_are_kept(overrides, rate, warmup):
    recipe = with_default_learning_rate(load_recipe(overrides=overrides), total_parameters=22_700_000)
    assert (recipe.train.learning_rate, recipe.train.warmup_ratio) == (rate, warmup)


@pytest.mark.parametrize(("examples", "processes", "accumulation", "size"), [
    (100_000, 1, 1, 32),
    (1600, 1, 1, 32),  # 50 steps an epoch at 32
    (1599, 1, 1, 16),
    (800, 1, 1, 16),
    (799, 1, 1, 8),
    (512, 1, 1, 8),  # the 512-example budget of the quality benchmark: 64 steps an epoch instead of 16
    (40, 1, 1, 8),  # the smallest, even with fewer than 50 steps
    (3200, 2, 1, 32),  # two processes: steps count the global batch
    (3199, 2, 1, 16),
    (3199, 1, 2, 16),  # gradient accumulation: steps are optimizer updates
])
def test_the_default_batch_size_keeps_50_steps_an_epoch(examples, processes, accumulation, size):
    assert default_batch_size(examples, processes, accumulation) == size


@pytest.mark.parametrize(("overrides", "size"), [
    ([], 8),
    (["train.batch_size=32"], 32),  # the user's, even for a small set
    (["train.batch_size=4"], 4),
    (["train.max_steps=100"], 32),  # the run's length is in steps: the batch does not change how many
])
def test_a_batch_size_the_user_sets_is_kept(overrides, size):
    assert with_default_batch_and_epochs(load_recipe(overrides=overrides), train_examples=512).train.batch_size == size


@pytest.mark.parametrize(("task", "examples", "processes", "epochs"), [
    ("classification", 100_000, 1, 3),
    ("classification", 1600, 1, 3),  # batch 32 keeps 50 steps an epoch: the usual 3 epochs
    ("classification", 1599, 1, 6),  # too small for batch 32: more passes, as for 512 examples
    ("classification", 512, 1, 6),
    ("classification", 3199, 2, 6),  # two processes: the global batch decides, as for the batch size
    ("classification", 3200, 2, 3),
    ("generation", 512, 1, 3),  # only classification was measured to gain; a language model can overfit instead
    ("token_classification", 512, 1, 3),
])
def test_small_classification_sets_train_more_epochs(task, examples, processes, epochs):
    assert default_epochs(task, examples, processes) == epochs


@pytest.mark.parametrize(("overrides", "epochs"), [
    ([], 6),
    (["train.epochs=2"], 2),  # the user's, even for a small set
    (["train.batch_size=32"], 6),  # the set is small whatever batch the user picks
    (["train.max_steps=100"], 3),  # the run's length is in steps
    (["task=generation"], 3),
])
def test_epochs_the_user_sets_are_kept(overrides, epochs):
    assert with_default_batch_and_epochs(load_recipe(overrides=overrides), train_examples=512).train.epochs == epochs


@pytest.mark.parametrize(("overrides", "evaluation"), [
    ([], 64),  # a small training set: batch 8, but evaluation keeps the default 2 x 32
    (["train.batch_size=4"], None),  # the user's batch: 2 x 4 (the Trainer's arguments apply it)
    (["train.eval_batch_size=10"], 10),
])
def test_the_evaluation_batch_does_not_shrink_with_the_training_set(overrides, evaluation):
    train = with_default_batch_and_epochs(load_recipe(overrides=overrides), train_examples=512).train
    assert train.eval_batch_size == evaluation


def test_a_run_without_a_batch_size_or_epochs_records_the_ones_it_chose(cli, tmp_path, tiny_bert, sentiment_rows):
    train, _ = sentiment_rows
    run_dir = tmp_path / "run"
    data = write_csv(tmp_path / "train.csv", train[:64])
    checked = cli(["classify", "--model", tiny_bert, "--train-file", data, "--max-length", 32, "--dry-run"])
    assert checked.exit_code == 0, checked.output
    assert "48 (8 per epoch at 8 examples per step" in checked.output  # check says what the run will do: 6 epochs
    result = cli(["classify", "--model", tiny_bert, "--train-file", data, "--max-length", 32,
                  "--output-dir", run_dir])
    assert result.exit_code == 0, result.output
    train_section = yaml.safe_load((run_dir / "recipe.yaml").read_text())["train"]
    assert (train_section["batch_size"], train_section["epochs"]) == (8, 6)
    card = (run_dir / "README.md").read_text()
    assert "| batch_size (per device) | 8 |" in card and "| epochs | 6.0 |" in card
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == 48


def test_a_run_without_a_learning_rate_records_the_one_it_chose(cli, tmp_path, tiny_bert, sentiment_rows):
    import torch

    torch.set_num_threads(1)
    train, validation = sentiment_rows
    run_dir = tmp_path / "run"
    result = cli(["classify", "--model", tiny_bert, "--train-file", write_csv(tmp_path / "train.csv", train[:64]),
                  "--validation-file", write_csv(tmp_path / "validation.csv", validation[:16]), "--epochs", 1,
                  "--batch-size", 8, "--max-length", 32, "--output-dir", run_dir, "train.logging_steps=1"])
    assert result.exit_code == 0, result.output
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert recipe["train"]["learning_rate"] == 1e-4 and recipe["train"]["warmup_ratio"] == 0.1
    assert "| learning_rate | 0.0001 |" in (run_dir / "README.md").read_text()  # the model card says it too
    # 8 steps: the first warms up (10% of the steps, rounded up), then the rate decays linearly from 1e-4.
    rates = [entry["learning_rate"] for entry in json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
             if "learning_rate" in entry]
    assert max(rates) == pytest.approx(1e-4) and rates[0] < 1e-4 and rates[-1] < rates[1]
