"""The `finetune` command line. Thin on purpose: every command builds a Recipe and hands it to train.run.

Heavy libraries (torch, transformers, datasets) are imported inside the command bodies, so `finetune --help`
answers at once. The training commands live here; cli_tools.py has the others, cli_app.py the shared app.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from finetune.cli.app import Overrides, app, user_errors
from finetune.training.distributed import LaunchConfig, inside_launcher, is_main_process, relaunch


def _flags(**pairs: Any) -> dict[str, Any]:
    """{'train.epochs': 1, 'data.dataset': None} -> {'train': {'epochs': 1}}: only the flags the user gave."""
    nested: dict[str, Any] = {}
    for dotted, value in pairs.items():
        if value is None or value == []:
            continue
        section, _, key = dotted.partition(".")
        if key:
            nested.setdefault(section, {})[key] = value
        else:
            nested[section] = value
    return nested


def _report(result: Any) -> None:
    """The end-of-run summary: what ran, how fast, how well, and where everything is."""
    from finetune.outputs.card import headline_metrics

    metrics = result.metrics
    rows = [("task", metrics.get("task")), ("model", metrics.get("model")), ("data", metrics.get("data")),
            ("examples", f"{metrics.get('train_samples')} train, {sum((metrics.get('eval_samples') or {}).values())} eval"),
            ("steps", f"{metrics.get('global_step', '?')} ({metrics.get('epoch', 0):g} epochs, "
                      f"{metrics.get('world_size', 1)} process(es))"),
            ("time", f"{metrics.get('train_runtime', 0):.1f} s training, "
                     f"{metrics.get('train_samples_per_second', 0):.1f} samples/s")]
    if "trainable_parameters" in metrics:
        rows.append(("parameters", f"{metrics['trainable_parameters']:,} trainable of {metrics['total_parameters']:,}"))
    rows += [(key.removeprefix("eval_"), f"{value:.4f}") for key, value in headline_metrics(metrics).items()]
    rows.append(("written to", f"{result.run_dir}/ (model, recipe.yaml, metrics.json, predictions/, plots/, "
                               f"README.md)"))
    width = max(len(name) for name, _ in rows)
    typer.echo("")
    for name, value in rows:
        typer.echo(f"  {name:<{width}}  {value}")


# ---- options shared by the training commands -----------------------------------------------------------------
# Every flag defaults to None, meaning "not given": only given flags override the recipe (see _flags).

Model = Annotated[Optional[str], typer.Option("--model", help="Hub id or local model folder.")]
Dataset = Annotated[Optional[str], typer.Option(
    "--dataset", help="A Hub dataset id (optionally id:config), glue/<task>, or a local file or folder.")]
DatasetConfig = Annotated[Optional[str], typer.Option("--dataset-config", help="Hub dataset configuration name.")]
TrainFile = Annotated[Optional[Path], typer.Option("--train-file", help="Local file to train on.")]
ValidationFile = Annotated[Optional[Path], typer.Option("--validation-file", help="Local file to evaluate on.")]
TestFile = Annotated[Optional[Path], typer.Option("--test-file", help="Local file to predict on after training.")]
Epochs = Annotated[Optional[float], typer.Option("--epochs", help="Training epochs. [default: 3]")]
MaxSteps = Annotated[Optional[int], typer.Option("--max-steps", help="Stop after N steps (overrides epochs).")]
LearningRate = Annotated[Optional[float], typer.Option("--learning-rate", help="Peak learning rate.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help="Training batch size per device.")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Random seed. [default: 42]")]
MaxTrainSamples = Annotated[Optional[int], typer.Option("--max-train-samples", help="Train on the first N only.")]
MaxEvalSamples = Annotated[Optional[int], typer.Option("--max-eval-samples", help="Evaluate on the first N only.")]
OutputDir = Annotated[Optional[Path], typer.Option("--output-dir", help="Run directory. [default: runs/<task>-<data>]")]
RecipeFile = Annotated[Optional[Path], typer.Option("--recipe", help="Start from this recipe file (or shipped name).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory.")]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="Check data, columns, labels and tokenization, report steps and devices; do not train.")]
Resume = Annotated[Optional[bool], typer.Option(
    "--resume", help="Continue from the newest complete checkpoint in --output-dir (named one: "
                     "train.resume=checkpoint-N).", show_default=False)]
Lora = Annotated[Optional[bool], typer.Option("--lora", help="Train LoRA adapters (needs the peft extra).",
                                              show_default=False)]
NumBeams = Annotated[Optional[int], typer.Option("--num-beams", help="Beam width for generation.")]
MaxNewTokens = Annotated[Optional[int], typer.Option("--max-new-tokens", help="Most tokens generated per input.")]
MixedPrecision = Annotated[Optional[str], typer.Option(
    "--mixed-precision", help="no, fp16, bf16 or auto (bf16 where supported, fp16 on other GPUs, no on CPU).")]
GradientAccumulation = Annotated[Optional[int], typer.Option(
    "--gradient-accumulation-steps", help="Add up gradients over N steps before each update.")]
GradientCheckpointing = Annotated[Optional[bool], typer.Option(
    "--gradient-checkpointing", help="Recompute activations in backward to save memory.", show_default=False)]
AutoBatchSize = Annotated[Optional[bool], typer.Option(
    "--auto-batch-size", help="Halve the batch size on out-of-memory until it fits.", show_default=False)]
NumProcesses = Annotated[int, typer.Option(
    "--num-processes", help="Processes in all (data parallel), started through accelerate launch.")]
NumMachines = Annotated[int, typer.Option("--num-machines", help="Machines taking part.")]
MachineRank = Annotated[int, typer.Option("--machine-rank", help="This machine's rank (0 is the main one).")]
MainProcessIp = Annotated[Optional[str], typer.Option("--main-process-ip", help="Address of machine rank 0.")]
MainProcessPort = Annotated[Optional[int], typer.Option("--main-process-port", help="Port on machine rank 0.")]


def _common_flags(model, dataset, dataset_config, train_file, validation_file, test_file, epochs, max_steps,
                  learning_rate, batch_size, seed, max_train_samples, max_eval_samples, output_dir, lora,
                  resume, mixed_precision, gradient_accumulation_steps, gradient_checkpointing,
                  auto_batch_size) -> dict:
    return {
        "model.name": model, "data.dataset": dataset, "data.config": dataset_config,
        "data.train_file": _text(train_file), "data.validation_file": _text(validation_file),
        "data.test_file": _text(test_file), "train.epochs": epochs, "train.max_steps": max_steps,
        "train.learning_rate": learning_rate, "train.batch_size": batch_size, "train.seed": seed,
        "data.max_train_samples": max_train_samples, "data.max_eval_samples": max_eval_samples,
        "output_dir": _text(output_dir), "peft.enabled": lora, "train.resume": resume,
        "train.mixed_precision": mixed_precision, "train.gradient_accumulation_steps": gradient_accumulation_steps,
        "train.gradient_checkpointing": gradient_checkpointing, "train.auto_find_batch_size": auto_batch_size,
    }


def _run_command(task: str, recipe: Optional[Path], overrides: Optional[list[str]], overwrite: bool,
                 dry_run: bool, launch: LaunchConfig, **flags: Any) -> None:
    from finetune.config.recipe import load_recipe

    resolved = load_recipe(recipe, overrides, base={"task": task}, flags=_flags(**flags))
    if resolved.task != task:
        from finetune.errors import UserError

        raise UserError(f"Recipe {recipe} is a {resolved.task} recipe; run it with `finetune train {recipe}`.")
    _train(resolved, overwrite, dry_run, launch)


# ---- the task commands ---------------------------------------------------------------------------------------


@app.command()
@user_errors
def classify(
    model: Model = None, dataset: Dataset = None, dataset_config: DatasetConfig = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        help="Folder of GLUE data on disk (original TSVs or HF parquet), used with --dataset glue/<task>.")] = None,
    train_file: TrainFile = None, validation_file: ValidationFile = None, test_file: TestFile = None,
    text_column: Annotated[Optional[list[str]], typer.Option(
        help="Text column; give it twice for sentence pairs. [default: guessed]")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="Label column. [default: label]")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Truncate inputs to this many tokens. [default: 128]")] = None,
    epochs: Epochs = None, max_steps: MaxSteps = None, learning_rate: LearningRate = None,
    batch_size: BatchSize = None, seed: Seed = None, max_train_samples: MaxTrainSamples = None,
    max_eval_samples: MaxEvalSamples = None, output_dir: OutputDir = None, recipe: RecipeFile = None,
    lora: Lora = None, resume: Resume = None, overwrite: Overwrite = False, dry_run: DryRun = False,
    mixed_precision: MixedPrecision = None, gradient_accumulation_steps: GradientAccumulation = None,
    gradient_checkpointing: GradientCheckpointing = None, auto_batch_size: AutoBatchSize = None,
    num_processes: NumProcesses = 1, num_machines: NumMachines = 1, machine_rank: MachineRank = 0,
    main_process_ip: MainProcessIp = None, main_process_port: MainProcessPort = None,
    overrides: Overrides = None,
) -> None:
    """Fine-tune a sequence classifier (GLUE, or any labelled text) and evaluate it. [model: bert-base-uncased]"""
    _run_command(
        "classification", recipe, overrides, overwrite, dry_run,
        LaunchConfig(num_processes, num_machines, machine_rank, main_process_ip, main_process_port),
        **_common_flags(model, dataset, dataset_config, train_file, validation_file, test_file, epochs, max_steps,
                        learning_rate, batch_size, seed, max_train_samples, max_eval_samples, output_dir, lora,
                        resume, mixed_precision, gradient_accumulation_steps, gradient_checkpointing,
                        auto_batch_size),
        **{"data.data_dir": _text(data_dir), "data.text_columns": text_column, "data.label_column": label_column,
           "data.max_length": max_length},
    )


SourceColumn = Annotated[Optional[str], typer.Option("--source-column", help="Document/source column.")]
TargetColumn = Annotated[Optional[str], typer.Option("--target-column", help="Summary/translation column.")]
SourcePrefix = Annotated[Optional[str], typer.Option("--source-prefix", help="Text put before every source.")]
MaxSourceLength = Annotated[Optional[int], typer.Option("--max-source-length", help="Source tokens kept.")]
MaxTargetLength = Annotated[Optional[int], typer.Option("--max-target-length", help="Target tokens kept.")]


@app.command()
@user_errors
def summarize(
    model: Model = None, dataset: Dataset = None, dataset_config: DatasetConfig = None,
    train_file: TrainFile = None, validation_file: ValidationFile = None, test_file: TestFile = None,
    source_column: SourceColumn = None, target_column: TargetColumn = None, source_prefix: SourcePrefix = None,
    max_source_length: MaxSourceLength = None, max_target_length: MaxTargetLength = None,
    num_beams: NumBeams = None, max_new_tokens: MaxNewTokens = None,
    epochs: Epochs = None, max_steps: MaxSteps = None, learning_rate: LearningRate = None,
    batch_size: BatchSize = None, seed: Seed = None, max_train_samples: MaxTrainSamples = None,
    max_eval_samples: MaxEvalSamples = None, output_dir: OutputDir = None, recipe: RecipeFile = None,
    lora: Lora = None, resume: Resume = None, overwrite: Overwrite = False, dry_run: DryRun = False,
    mixed_precision: MixedPrecision = None, gradient_accumulation_steps: GradientAccumulation = None,
    gradient_checkpointing: GradientCheckpointing = None, auto_batch_size: AutoBatchSize = None,
    num_processes: NumProcesses = 1, num_machines: NumMachines = 1, machine_rank: MachineRank = 0,
    main_process_ip: MainProcessIp = None, main_process_port: MainProcessPort = None,
    overrides: Overrides = None,
) -> None:
    """Fine-tune an encoder-decoder model (T5, BART, Pegasus) to summarize; scored with ROUGE. [model: t5-small]"""
    _run_command(
        "summarization", recipe, overrides, overwrite, dry_run,
        LaunchConfig(num_processes, num_machines, machine_rank, main_process_ip, main_process_port),
        **_common_flags(model, dataset, dataset_config, train_file, validation_file, test_file, epochs, max_steps,
                        learning_rate, batch_size, seed, max_train_samples, max_eval_samples, output_dir, lora,
                        resume, mixed_precision, gradient_accumulation_steps, gradient_checkpointing,
                        auto_batch_size),
        **{"data.source_column": source_column, "data.target_column": target_column,
           "data.source_prefix": source_prefix, "data.max_length": max_source_length,
           "data.max_target_length": max_target_length, "generation.num_beams": num_beams,
           "generation.max_new_tokens": max_new_tokens},
    )


@app.command()
@user_errors
def translate(
    model: Model = None, dataset: Dataset = None, dataset_config: DatasetConfig = None,
    train_file: Annotated[Optional[Path], typer.Option(
        "--train-file", help="jsonl/csv with the two language columns, or a prefix of line-aligned text files "
                             "(train for train.en + train.de).")] = None,
    validation_file: ValidationFile = None, test_file: TestFile = None,
    source_lang: Annotated[Optional[str], typer.Option(help="Source language code, e.g. en.")] = None,
    target_lang: Annotated[Optional[str], typer.Option(help="Target language code, e.g. de.")] = None,
    source_prefix: SourcePrefix = None, max_source_length: MaxSourceLength = None,
    max_target_length: MaxTargetLength = None, num_beams: NumBeams = None, max_new_tokens: MaxNewTokens = None,
    epochs: Epochs = None, max_steps: MaxSteps = None, learning_rate: LearningRate = None,
    batch_size: BatchSize = None, seed: Seed = None, max_train_samples: MaxTrainSamples = None,
    max_eval_samples: MaxEvalSamples = None, output_dir: OutputDir = None, recipe: RecipeFile = None,
    lora: Lora = None, resume: Resume = None, overwrite: Overwrite = False, dry_run: DryRun = False,
    mixed_precision: MixedPrecision = None, gradient_accumulation_steps: GradientAccumulation = None,
    gradient_checkpointing: GradientCheckpointing = None, auto_batch_size: AutoBatchSize = None,
    num_processes: NumProcesses = 1, num_machines: NumMachines = 1, machine_rank: MachineRank = 0,
    main_process_ip: MainProcessIp = None, main_process_port: MainProcessPort = None,
    overrides: Overrides = None,
) -> None:
    """Fine-tune an encoder-decoder model (T5, Marian, mBART) to translate; scored with BLEU and chrF."""
    _run_command(
        "translation", recipe, overrides, overwrite, dry_run,
        LaunchConfig(num_processes, num_machines, machine_rank, main_process_ip, main_process_port),
        **_common_flags(model, dataset, dataset_config, train_file, validation_file, test_file, epochs, max_steps,
                        learning_rate, batch_size, seed, max_train_samples, max_eval_samples, output_dir, lora,
                        resume, mixed_precision, gradient_accumulation_steps, gradient_checkpointing,
                        auto_batch_size),
        **{"data.source_lang": source_lang, "data.target_lang": target_lang, "data.source_prefix": source_prefix,
           "data.max_length": max_source_length, "data.max_target_length": max_target_length,
           "generation.num_beams": num_beams, "generation.max_new_tokens": max_new_tokens},
    )


@app.command()
@user_errors
def generate(
    model: Model = None, dataset: Dataset = None, dataset_config: DatasetConfig = None,
    train_file: Annotated[Optional[Path], typer.Option(
        "--train-file", help="Raw text (.txt) or prompt/completion rows (.jsonl/.csv) to train on.")] = None,
    validation_file: ValidationFile = None, test_file: TestFile = None,
    data_format: Annotated[Optional[str], typer.Option(
        "--format", help="text (packed blocks) or prompt_completion. [default: from the data]")] = None,
    prompt_column: Annotated[Optional[str], typer.Option(help="Prompt/instruction column.")] = None,
    completion_column: Annotated[Optional[str], typer.Option(help="Completion/response column.")] = None,
    block_size: Annotated[Optional[int], typer.Option(help="Tokens per packed block in text mode.")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Longest prompt+completion in tokens.")] = None,
    sample_prompt: Annotated[Optional[list[str]], typer.Option(
        help="Prompt to sample before and after training (samples.jsonl); repeatable.")] = None,
    max_new_tokens: MaxNewTokens = None,
    epochs: Epochs = None, max_steps: MaxSteps = None, learning_rate: LearningRate = None,
    batch_size: BatchSize = None, seed: Seed = None, max_train_samples: MaxTrainSamples = None,
    max_eval_samples: MaxEvalSamples = None, output_dir: OutputDir = None, recipe: RecipeFile = None,
    lora: Lora = None, resume: Resume = None, overwrite: Overwrite = False, dry_run: DryRun = False,
    mixed_precision: MixedPrecision = None, gradient_accumulation_steps: GradientAccumulation = None,
    gradient_checkpointing: GradientCheckpointing = None, auto_batch_size: AutoBatchSize = None,
    num_processes: NumProcesses = 1, num_machines: NumMachines = 1, machine_rank: MachineRank = 0,
    main_process_ip: MainProcessIp = None, main_process_port: MainProcessPort = None,
    overrides: Overrides = None,
) -> None:
    """Fine-tune a causal language model (GPT-2, Llama, Qwen) on text or prompt/completion pairs. [model: gpt2]"""
    _run_command(
        "generation", recipe, overrides, overwrite, dry_run,
        LaunchConfig(num_processes, num_machines, machine_rank, main_process_ip, main_process_port),
        **_common_flags(model, dataset, dataset_config, train_file, validation_file, test_file, epochs, max_steps,
                        learning_rate, batch_size, seed, max_train_samples, max_eval_samples, output_dir, lora,
                        resume, mixed_precision, gradient_accumulation_steps, gradient_checkpointing,
                        auto_batch_size),
        **{"data.format": data_format, "data.prompt_column": prompt_column,
           "data.completion_column": completion_column, "data.block_size": block_size,
           "data.max_length": max_length, "generation.sample_prompts": sample_prompt,
           "generation.max_new_tokens": max_new_tokens},
    )


def _text(path: Optional[Path]) -> Optional[str]:
    return None if path is None else str(path)


def _train(recipe: Any, overwrite: bool, dry_run: bool = False, launch: Optional[LaunchConfig] = None) -> None:
    from finetune.training.run import run

    if dry_run:
        _check(recipe)
        return
    if launch is not None and launch.wanted and not inside_launcher():
        # The recipe is valid (checked above, once); now the same command runs in every process.
        typer.echo(f"finetune: launching {launch.num_processes} processes through accelerate", err=True)
        raise typer.Exit(relaunch(launch))

    if is_main_process():
            typer.echo(f"finetune: {recipe.task} | model {recipe.model.name} | "
                   f"data {recipe.data.dataset or recipe.data.train_file} | output {recipe.resolved_output_dir()}",
                   err=True)
    result = run(recipe, overwrite=overwrite)
    if result.is_main_process:
        _report(result)


# ---- train / recipes -----------------------------------------------------------------------------------------


@app.command()
@user_errors
def train(
    recipe: Annotated[str, typer.Argument(help="Recipe file, or a shipped recipe name such as glue/sst2.")],
    overrides: Overrides = None,
    resume: Resume = None,
    overwrite: Overwrite = False,
    dry_run: DryRun = False,
    num_processes: NumProcesses = 1, num_machines: NumMachines = 1, machine_rank: MachineRank = 0,
    main_process_ip: MainProcessIp = None, main_process_port: MainProcessPort = None,
) -> None:
    """Run any recipe: finetune train recipes/glue/sst2.yaml train.epochs=1"""
    from finetune.config.recipe import load_recipe

    _train(load_recipe(recipe, overrides, flags=_flags(**{"train.resume": resume})), overwrite, dry_run,
           LaunchConfig(num_processes, num_machines, machine_rank, main_process_ip, main_process_port))


def _check(recipe: Any) -> None:
    from finetune.training.check import check

    typer.echo(f"Checking {recipe.task} run (nothing is trained):")
    typer.echo(check(recipe).render())
    typer.echo("ok: the run is ready to start.")


@app.command("check")
@user_errors
def check_command(
    recipe: Annotated[str, typer.Argument(help="Recipe file, or a shipped recipe name.")],
    overrides: Overrides = None,
) -> None:
    """Check a recipe before spending compute: data, columns, labels, tokenization, steps, devices."""
    from finetune.config.recipe import load_recipe

    _check(load_recipe(recipe, overrides))

