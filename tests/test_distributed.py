"""Several processes through Accelerate, mixed precision, engines, and `finetune env`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from finetune.training.distributed import LaunchConfig, launch_command, strip_launch_flags
from tests.helpers import write_csv


def test_launch_flags_are_stripped_for_the_children():
    argv = ["classify", "--num-processes", "2", "--model", "m", "--num-machines=1", "--main-process-port", "0",
            "train.epochs=1"]
    assert strip_launch_flags(argv) == ["classify", "--model", "m", "train.epochs=1"]


def test_launch_command_uses_accelerate_multi_process_path():
    command = launch_command(LaunchConfig(num_processes=2), ["classify", "--num-processes", "2", "--model", "m"])
    assert command[1:4] == ["-m", "accelerate.commands.launch", "--multi_gpu"]
    assert command[command.index("--num_processes") + 1] == "2"
    assert command[-4:] == ["-m", "finetune", "classify", "--model", "m"][-4:]
    assert "--num-processes" not in command


def test_launch_respects_the_users_accelerate_config(tmp_path, monkeypatch):
    """With an `accelerate config` file, its settings (distributed type, precision, dynamo) stand: finetune adds
    only what its own command line gave. accelerate's own launch parser reads the result."""
    from accelerate.commands.launch import launch_command_parser

    from finetune.training.distributed import user_accelerate_config

    config_file = tmp_path / "accelerate.yaml"
    config_file.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nmixed_precision: bf16\n"
                           "num_processes: 4\ndynamo_config:\n  dynamo_backend: INDUCTOR\n")
    monkeypatch.setenv("ACCELERATE_CONFIG_FILE", str(config_file))
    assert user_accelerate_config() == config_file
    command = launch_command(LaunchConfig(num_processes=2), ["classify", "--num-processes", "2"], config_file)
    for imposed in ("--multi_gpu", "--mixed_precision", "--dynamo_backend", "--main_process_port"):
        assert imposed not in command
    arguments = launch_command_parser().parse_args(command[3:])
    assert arguments.config_file == str(config_file) and arguments.num_processes == 2
    assert arguments.training_script == "finetune" and arguments.module

    plain = launch_command(LaunchConfig(num_processes=2), ["classify"])  # no config: everything explicit
    arguments = launch_command_parser().parse_args(plain[3:])
    assert arguments.multi_gpu and arguments.mixed_precision == "no" and arguments.main_process_port == 0
    monkeypatch.setenv("ACCELERATE_CONFIG_FILE", str(tmp_path / "missing.yaml"))
    assert user_accelerate_config() is None


@pytest.fixture(scope="module")
def dp_data(tmp_path_factory, sentiment_rows):
    work = tmp_path_factory.mktemp("dp")
    train, validation = sentiment_rows
    return work, ["--train-file", str(write_csv(work / "train.csv", train[:256])),
                  "--validation-file", str(write_csv(work / "validation.csv", validation[:64])),
                  "--epochs", "2", "--learning-rate", "2e-3", "--max-length", "32", "--seed", "3",
                  "train.group_by_length=false"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "finetune", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def test_two_processes_report_the_same_losses_as_one(dp_data, tiny_bert):
    work, args = dp_data
    # Same global batch: 1 process x 16 against 2 processes x 8.
    single = run_cli("classify", "--model", tiny_bert, *args, "--batch-size", "16", "--output-dir", work / "one")
    assert single.returncode == 0, single.stderr
    double = run_cli("classify", "--model", tiny_bert, *args, "--batch-size", "8", "--output-dir", work / "two",
                     "--num-processes", "2")
    assert double.returncode == 0, double.stderr
    one = json.loads((work / "one" / "metrics.json").read_text())
    two = json.loads((work / "two" / "metrics.json").read_text())
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert two["train_samples"] == one["train_samples"] == 256
    # transformers 5 used to report these doubled with 2 processes (average_tokens_across_devices).
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=0.05)
    assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=0.05)
    assert (double.stderr + double.stdout).count("written to") == 1  # the main process alone prints the summary
    rows = (work / "two" / "predictions" / "validation.jsonl").read_text().splitlines()
    assert len(rows) == 64


def test_bf16_on_cpu(cli, tmp_path, tiny_bert, dp_data):
    _, args = dp_data
    result = cli(["classify", "--model", tiny_bert, *args, "--batch-size", "16", "--mixed-precision", "bf16",
                  "--output-dir", tmp_path / "bf16", "--max-steps", "8"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "bf16" / "metrics.json").read_text())
    assert metrics["mixed_precision"] == "bf16" and math.isfinite(metrics["eval_loss"])
    assert 0.3 < metrics["eval_loss"] < 1.5  # a binary classifier's loss, not a bf16 overflow or underflow


def test_missing_deepspeed_is_a_clear_error(cli, tmp_path, tiny_bert, dp_data):
    _, args = dp_data
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        result = cli(["classify", "--model", tiny_bert, *args, "--output-dir", tmp_path / "b",
                      "distributed.zero_stage=2"])
        assert result.exit_code == 2 and "pip install deepspeed" in result.output


def test_fsdp_and_deepspeed_options_map_to_the_trainer():
    from finetune.config.loading import load_recipe
    from finetune.training.arguments import deepspeed_config, engine_options

    recipe = load_recipe(overrides=["distributed.fsdp=full_shard auto_wrap", "distributed.fsdp_wrap=[BertLayer]"])
    assert engine_options(recipe.distributed) == {"fsdp": True, "fsdp_config": {
        "reshard_after_forward": True, "transformer_layer_cls_to_wrap": ["BertLayer"]}}
    config = deepspeed_config(3, offload=True)
    assert config["zero_optimization"]["stage"] == 3
    assert config["zero_optimization"]["offload_param"]["device"] == "cpu"


def test_fsdp_options_are_the_non_deprecated_form():
    """transformers warns that the `fsdp="full_shard ..."` string is deprecated; finetune passes fsdp=True and an
    FSDP2 fsdp_config, which TrainingArguments accepts without that warning."""
    import logging

    from transformers import TrainingArguments

    from finetune.config.schema import DistributedSection
    from finetune.errors import UserError
    from finetune.training.arguments import engine_options, fsdp_config

    assert fsdp_config("shard_grad_op offload", None) == {"reshard_after_forward": False, "cpu_offload": True}
    with pytest.raises(UserError, match="hybrid_shard"):
        fsdp_config("hybrid_shard", None)

    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("transformers.training_args")
    logger.addHandler(handler)
    try:
        TrainingArguments(output_dir="unused", use_cpu=True, report_to="none", fsdp="full_shard auto_wrap")
        assert any("deprecated" in message for message in messages)  # the capture sees transformers' warning
        messages.clear()
        options = engine_options(DistributedSection(fsdp="full_shard auto_wrap", fsdp_wrap=["BertLayer"]))
        arguments = TrainingArguments(output_dir="unused", use_cpu=True, report_to="none", **options)
    finally:
        logger.removeHandler(handler)
    assert not any("deprecated" in message for message in messages), messages
    assert arguments.fsdp_config["reshard_after_forward"] is True


def test_fsdp_on_cpus_is_refused_before_anything_is_written(cli, tmp_path, tiny_bert, dp_data):
    """accelerate applies FSDP only to GPU processes: on CPUs the run would silently train unsharded."""
    _, args = dp_data
    for mode in (["--dry-run"], []):
        result = cli(["classify", "--model", tiny_bert, *args, "--output-dir", tmp_path / "run", *mode,
                      "distributed.fsdp=full_shard auto_wrap", "train.use_cpu=true"])
        assert result.exit_code == 2, result.output
        assert "distributed.fsdp needs GPUs" in result.output and "--num-processes" in result.output
        assert not (tmp_path / "run").exists()


def test_env_command(cli):
    result = cli(["env"])
    assert result.exit_code == 0
    assert "transformers" in result.output and "Hugging Face Hub" in result.output
