"""Coming from run_glue.py / TRL: transformers' names as recipe keys and flags, and any other TrainingArguments
field through train.args, checked against the installed transformers."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from tests.helpers import write_csv


def test_hf_names_are_recipe_keys_per_layer():
    from finetune.config.loading import build_recipe

    recipe = build_recipe([
        ("parent", {"train": {"epochs": 3, "batch_size": 32}}),
        ("file", {"model": {"model_name_or_path": "gpt2"}, "data": {"dataset_name": "imdb", "max_seq_length": 64},
                  "train": {"num_train_epochs": 1, "per_device_train_batch_size": 8, "bf16": True,
                            "lr_scheduler_type": "cosine", "report_to": "tensorboard"}}),
    ])
    assert (recipe.model.name, recipe.data.dataset, recipe.data.max_length) == ("gpt2", "imdb", 64)
    assert (recipe.train.epochs, recipe.train.batch_size, recipe.train.lr_scheduler) == (1, 8, "cosine")
    assert recipe.train.mixed_precision == "bf16" and recipe.train.report_to == ["tensorboard"]
    dumped = yaml.safe_load(recipe.to_yaml())  # recipe.yaml speaks finetune's keys only
    assert "num_train_epochs" not in dumped["train"] and dumped["train"]["epochs"] == 1


def test_an_hf_name_next_to_its_key_with_another_value_is_an_error():
    from finetune.config.loading import build_recipe
    from finetune.errors import UserError

    with pytest.raises(UserError, match="'train.num_train_epochs' .* and 'train.epochs' .* same setting"):
        build_recipe([("recipe.yaml", {"train": {"epochs": 2, "num_train_epochs": 1}})])


@pytest.mark.parametrize(("args", "message"), [
    ({"max_grad_nrom": 0.5}, "did you mean 'max_grad_norm'"),
    ({"learning_rate": 0.1}, "set by recipe key train.learning_rate"),
    ({"num_train_epochs": 1}, "set by recipe key train.epochs"),
])
def test_train_args_are_checked_against_trainingarguments(cli, args, message):
    # The check imports transformers; imported first inside the CLI runner, its log handler would keep the runner's
    # stream, closed once the test ends, and later tests' warnings would fail on it.
    import transformers  # noqa: F401

    overrides = [f"train.args.{key}={value}" for key, value in args.items()]
    result = cli(["check", "glue/sst2", *overrides])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_train_args_reach_trainingarguments_and_win_over_derived_defaults(tmp_path):
    from types import SimpleNamespace

    from finetune.config.loading import load_recipe
    from finetune.training.arguments import build_training_arguments

    recipe = load_recipe(base={"task": "classification"}, overrides=[
        "train.args.optim=adafactor", "train.args.warmup_steps=7", "train.args.max_grad_norm=0.5",
        "train.args.lr_scheduler_kwargs={power: 2.0}", "train.args.torch_compile_mode=reduce-overhead",
        "train.args.adam_beta2=0.98"])
    from transformers import TrainingArguments

    task = SimpleNamespace(main_metric="accuracy", training_arguments=TrainingArguments)
    arguments = build_training_arguments(recipe, task, tmp_path, ["validation"])
    assert arguments.optim == "adafactor" and arguments.warmup_steps == 7 and arguments.max_grad_norm == 0.5
    assert arguments.lr_scheduler_kwargs == {"power": 2.0} and arguments.torch_compile_mode == "reduce-overhead"
    assert arguments.adam_beta2 == 0.98


def test_a_value_transformers_refuses_is_a_user_error(tmp_path):
    from types import SimpleNamespace

    from transformers import TrainingArguments

    from finetune.config.loading import load_recipe
    from finetune.errors import UserError
    from finetune.training.arguments import build_training_arguments

    recipe = load_recipe(base={"task": "classification"}, overrides=["train.args.optim=not-an-optimizer"])
    task = SimpleNamespace(main_metric="accuracy", training_arguments=TrainingArguments)
    with pytest.raises(UserError, match="train.args"):
        build_training_arguments(recipe, task, tmp_path, ["validation"])


def test_run_glue_flags_train_a_model(cli, tmp_path, tiny_bert, sentiment_rows):
    train, validation = sentiment_rows
    output = tmp_path / "run"
    result = cli(["classify", "--model_name_or_path", tiny_bert,
                  "--train_file", write_csv(tmp_path / "train.csv", train[:64]),
                  "--validation_file", write_csv(tmp_path / "validation.csv", validation[:16]),
                  "--num_train_epochs", "1", "--per_device_train_batch_size", "16", "--learning_rate", "1e-3",
                  "--max_steps", "2", "--bf16", "--report_to", "none", "--output_dir", output,
                  "train.args.max_grad_norm=0.5"])
    assert result.exit_code == 0, result.output
    recipe = yaml.safe_load((output / "recipe.yaml").read_text())
    assert recipe["model"]["name"] == str(tiny_bert)
    assert (recipe["train"]["epochs"], recipe["train"]["batch_size"], recipe["train"]["max_steps"]) == (1, 16, 2)
    assert recipe["train"]["mixed_precision"] == "bf16" and recipe["train"]["args"] == {"max_grad_norm": 0.5}


def test_every_hf_name_is_a_flag_of_each_training_command_that_has_its_key():
    from finetune.cli.training import command_flags
    from finetune.config.schema import HF_NAMES
    from finetune.tasks import families

    for family in families():
        flags = command_flags(family)
        names = [name for flag in flags for name in (flag.name, *flag.aliases)]
        assert len(names) == len(set(names)), family.name  # no flag name means two things
        keys = {flag.key for flag in flags}
        for alias, key in HF_NAMES.items():
            if key in keys:
                assert "--" + alias.rsplit(".", 1)[-1] in names, (family.name, alias)
        assert {"--bf16", "--fp16", "--resume_from_checkpoint", "--push-to-hub", "--report-to"} <= set(names)
    assert all(dataclasses.is_dataclass(flag) for flag in flags)
