"""The `finetune` command line. Thin on purpose: every command builds a Recipe and hands it to train.run.

Heavy libraries (torch, transformers, datasets) are imported inside the command bodies, so `finetune --help`
answers at once.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from finetune.distributed import LaunchConfig, inside_launcher, is_main_process, relaunch

app = typer.Typer(
    name="finetune",
    help="Fine-tune Hugging Face models from one command or a YAML recipe.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
recipes_app = typer.Typer(help="List, show and validate recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")

_state = {"debug": False}

OVERRIDES_HELP = "Recipe overrides as dotted key=value, for example train.epochs=1 data.max_length=64."


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def user_errors(command):
    """Print a UserError as one line and exit 2; a traceback only with --debug."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from finetune.errors import TrainingInterrupted, UserError

        try:
            return command(*args, **kwargs)
        except UserError as error:
            if _state["debug"]:
                raise
            _fail(str(error), error.exit_code)
        except TrainingInterrupted as interrupted:
            typer.secho(str(interrupted), err=True, fg=typer.colors.YELLOW)
            raise typer.Exit(interrupted.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted.", 130)

    return wrapper


def _version(value: bool) -> None:
    if value:
        from finetune import __version__

        typer.echo(f"finetune {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings, errors and the final summary.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also the libraries' informational logs.")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    _state["debug"] = debug
    if quiet or verbose:
        import os

        from finetune.console import VERBOSITY_VARIABLE

        os.environ[VERBOSITY_VARIABLE] = "quiet" if quiet else "verbose"


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
    from finetune.card import headline_metrics

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
Overrides = Annotated[Optional[list[str]], typer.Argument(help=OVERRIDES_HELP, show_default=False)]
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
    from finetune.recipe import load_recipe

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
    from finetune.train import run

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
    from finetune.recipe import load_recipe

    _train(load_recipe(recipe, overrides, flags=_flags(**{"train.resume": resume})), overwrite, dry_run,
           LaunchConfig(num_processes, num_machines, machine_rank, main_process_ip, main_process_port))


def _check(recipe: Any) -> None:
    from finetune.check import check

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
    from finetune.recipe import load_recipe

    _check(load_recipe(recipe, overrides))


@recipes_app.command("list")
@user_errors
def recipes_list() -> None:
    """Shipped recipes and what each is for."""
    from finetune.recipe import find_recipe, read_yaml, shipped_recipe_names

    for name in shipped_recipe_names():
        description = read_yaml(find_recipe(name)).get("description") or ""
        typer.echo(f"{name:<36} {description}")


@recipes_app.command("show")
@user_errors
def recipes_show(name: Annotated[str, typer.Argument(help="Shipped recipe name or file.")]) -> None:
    """Print a recipe file as written (comments included)."""
    from finetune.recipe import find_recipe

    typer.echo(find_recipe(name).read_text(encoding="utf-8"), nl=False)


@recipes_app.command("validate")
@user_errors
def recipes_validate(
    files: Annotated[list[str], typer.Argument(help="Recipe files or shipped names.")],
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help=OVERRIDES_HELP)] = None,
    resolved: Annotated[bool, typer.Option("--resolved", help="Print the fully resolved recipe.")] = False,
) -> None:
    """Check recipes (keys, types, extends) without running them."""
    from finetune.recipe import load_recipe

    for file in files:
        recipe = load_recipe(file, overrides)
        typer.echo(f"ok  {file}  ({recipe.task}, model {recipe.model.name}, "
                   f"data {recipe.data.dataset or recipe.data.train_file})")
        if resolved:
            typer.echo(recipe.to_yaml())


# ---- predict / smoke -----------------------------------------------------------------------------------------


@app.command()
@user_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or a checkpoint folder inside one).")],
    text: Annotated[Optional[list[str]], typer.Option(help="Input text; repeat for several.")] = None,
    text_pair: Annotated[Optional[list[str]], typer.Option(
        help="Classification: second sentence for sentence-pair models; one per --text.")] = None,
    prompt: Annotated[Optional[list[str]], typer.Option(help="Generation: prompt to continue; repeatable.")] = None,
    file: Annotated[Optional[Path], typer.Option(
        help="One input per line (sentence pairs: tab-separated), or a .jsonl/.csv with the run's text columns.")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="Generation: most new tokens.")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Generation: sampling temperature (samples when set).")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Generation: nucleus sampling mass.")] = None,
    top_k: Annotated[Optional[int], typer.Option(help="Generation: sample among the k likeliest tokens.")] = None,
    num_beams: Annotated[Optional[int], typer.Option(help="Generation: beam width.")] = None,
    batch_size: Annotated[int, typer.Option(help="Inputs per forward pass.")] = 32,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object per input.")] = False,
) -> None:
    """Use a trained run: a label and score per input (classification), or generated text (other tasks)."""
    from finetune.predict import format_prediction, load_inputs, predict_texts, run_task

    task = run_task(run_dir)
    if task == "classification":
        inputs = load_inputs(text or [], text_pair or [], file)
        for item in predict_texts(run_dir, inputs, batch_size=batch_size):
            typer.echo(format_prediction(item, as_json=json_output))
        return
    settings = {key: value for key, value in {
        "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "top_k": top_k,
        "num_beams": num_beams}.items() if value is not None}
    if temperature is not None or top_p is not None or top_k is not None:
        settings["do_sample"] = True
    texts = [source for source, _ in load_inputs([*(text or []), *(prompt or [])], [], file)]
    if task == "generation":
        from finetune.tasks.causal_lm import predict_run
    else:
        from finetune.tasks.seq2seq import predict_run
    outputs = predict_run(run_dir, texts, settings, stream=not json_output and sys.stdout.isatty())
    for source, output in zip(texts, outputs):
        if json_output:
            import json

            typer.echo(json.dumps({"input": source, "output": output}, ensure_ascii=False))
        elif not sys.stdout.isatty():
            typer.echo(output)


@app.command()
@user_errors
def evaluate(
    checkpoints: Annotated[Optional[list[str]], typer.Argument(
        help="Run directories, checkpoint-N folders, model folders, Hub ids or LoRA adapters. With a suite: "
             "TASK=CHECKPOINT pairs (sst2=runs/sst2), or a folder of per-task runs.", show_default=False)] = None,
    benchmark: Annotated[Optional[str], typer.Option(
        "--benchmark", "-b", help="A task (glue/sst2), a suite (glue) or a benchmark YAML file. "
                                  "[default: each run's own evaluation data]")] = None,
    dataset: Annotated[Optional[str], typer.Option(
        help="Score on any dataset instead: a Hub id, glue/<task>, or a local file or folder.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split to score. [default: the evaluation split(s)]")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Score only the first N examples of each split.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Evaluation batch size (scores do not depend on it).")] = 32,
    data_dir: Annotated[Optional[Path], typer.Option(
        help="Folder of GLUE data on disk. [default: the run's data.data_dir]")] = None,
    output_dir: Annotated[Path, typer.Option(help="Results go to OUTPUT_DIR/<checkpoint>/<benchmark>.json.")] = Path(
        "results"),
    all_checkpoints: Annotated[bool, typer.Option(
        "--all-checkpoints", help="Score every checkpoint-N of each run; write a metric-by-step table and plot.")] = False,
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Recipe overrides for the evaluation, e.g. data.max_length=256, generation.num_beams=4, "
                      "task=translation.")] = None,
) -> None:
    """Score checkpoints on a benchmark: finetune evaluate runs/a runs/b --benchmark glue/sst2"""
    from finetune.evaluation_run import run_evaluation

    report = run_evaluation(
        checkpoints or [], benchmark=benchmark, dataset=dataset, split=split, limit=limit, batch_size=batch_size,
        data_dir=_text(data_dir), output_dir=output_dir, all_checkpoints=all_checkpoints, overrides=overrides,
        echo=lambda line: typer.echo(line, err=True))
    typer.echo("")
    typer.echo(report.text, nl=False)
    typer.echo("\nWritten: " + ", ".join(str(path) for path in report.files))


@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory trained with LoRA (--lora).")],
    merge: Annotated[bool, typer.Option("--merge", help="Fold the adapters into the base weights.")] = False,
    output_dir: Annotated[Optional[Path], typer.Option(help="Where to write. [default: RUN_DIR/merged]")] = None,
) -> None:
    """Write a plain transformers model from a LoRA run (--merge), loadable without PEFT."""
    from finetune.errors import UserError
    from finetune.lora import export_merged

    if not merge:
        raise UserError("Nothing to do: pass --merge to write the base model with the adapters folded in.")
    written = export_merged(run_dir, output_dir or run_dir / "merged")
    typer.echo(f"Merged model written to {written}")


@app.command()
@user_errors
def push(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    repo_id: Annotated[str, typer.Option(help="Hub repository: user/name or org/name.")],
    private: Annotated[bool, typer.Option(help="Create the repository as private.")] = False,
) -> None:
    """Upload a run (model, tokenizer, model card, metrics, plots) to the Hugging Face Hub."""
    from finetune.push import push_run

    typer.echo(f"Pushed {run_dir} to {push_run(run_dir, repo_id, private=private)}")


@app.command("env")
@user_errors
def env_command() -> None:
    """Versions, devices, precision support, the Accelerate config in effect, and whether the Hub answers."""
    from finetune.environment import describe

    rows = describe()
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"{name:<{width}}  {value}")


@app.command()
@user_errors
def smoke(
    output_dir: Annotated[Optional[Path], typer.Option(help="Keep the smoke run here. [default: a temp folder]")] = None,
) -> None:
    """Self-contained check, no network: build data and a tiny model, then train, evaluate and predict."""
    from finetune.smoke import run_smoke

    raise typer.Exit(run_smoke(output_dir))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
