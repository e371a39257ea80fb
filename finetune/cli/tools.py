"""Commands that use, check or share what training produced: recipes, check, predict, evaluate, export, push,
env, smoke, tiny-model. Heavy imports stay inside the command bodies."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from finetune.cli.app import OVERRIDES_HELP, app, load_task_recipe, recipes_app, switch, user_errors
from finetune.tasks import families

_FAMILY_NAMES = ", ".join(family.name for family in families())


@recipes_app.command("list")
@user_errors
def recipes_list() -> None:
    """Shipped recipes and what each is for."""
    from finetune.config.loading import find_recipe, read_yaml, shipped_recipe_names

    for name in shipped_recipe_names():
        description = read_yaml(find_recipe(name)).get("description") or ""
        typer.echo(f"{name:<36} {description}")


@recipes_app.command("show")
@user_errors
def recipes_show(name: Annotated[str, typer.Argument(help="Shipped recipe name or file.")]) -> None:
    """Print a recipe file as written (comments included)."""
    from finetune.config.loading import find_recipe

    typer.echo(find_recipe(name).read_text(encoding="utf-8"), nl=False)


@recipes_app.command("validate")
@user_errors
def recipes_validate(
    files: Annotated[list[str], typer.Argument(help="Recipe files or shipped names.")],
    overrides: Annotated[list[str] | None, typer.Option("--set", help=OVERRIDES_HELP)] = None,
    resolved: Annotated[bool, switch("--resolved", help="Print the fully resolved recipe.")] = False,
) -> None:
    """Check recipes (keys, types, extends) without running them."""
    for file in files:
        recipe = load_task_recipe(file, overrides)
        typer.echo(f"ok  {file}  ({recipe.task}, model {recipe.model.name}, "
                   f"data {recipe.data.dataset or recipe.data.train_file})")
        if resolved:
            typer.echo(recipe.to_yaml())


# ---- predict / smoke -----------------------------------------------------------------------------------------


@app.command()
@user_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or a checkpoint folder inside one).")],
    text: Annotated[list[str] | None, typer.Option(help="Input text; repeat for several.")] = None,
    text_pair: Annotated[list[str] | None, typer.Option(
        help="Classification: second sentence for sentence-pair models; one per --text.")] = None,
    prompt: Annotated[list[str] | None, typer.Option(help="Generation: prompt to continue; repeatable.")] = None,
    message: Annotated[list[str] | None, typer.Option(
        help="Chat: one turn of a conversation; repeat for user, assistant, user, ... (the last is answered).")] = None,
    system: Annotated[str | None, typer.Option(
        help="Chat: the conversation's system turn. Default: the run's data.system_prompt.")] = None,
    file: Annotated[Path | None, typer.Option(
        help="One input per line (sentence pairs: tab-separated), or a .jsonl/.csv with the run's text "
             "columns (chat: a .jsonl of messages/conversations rows).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Generation: most new tokens.")] = None,
    temperature: Annotated[float | None, typer.Option(
        help="Generation: sampling temperature (samples when set).")] = None,
    top_p: Annotated[float | None, typer.Option(help="Generation: nucleus sampling mass.")] = None,
    top_k: Annotated[int | None, typer.Option(help="Generation: sample among the k likeliest tokens.")] = None,
    num_beams: Annotated[int | None, typer.Option(help="Generation: beam width.")] = None,
    batch_size: Annotated[int, typer.Option(help="Inputs per forward pass.")] = 32,
    json_output: Annotated[bool, switch("--json", help="Print one JSON object per input.")] = False,
) -> None:
    """Use a trained run: a label and score per input (classification), or generated text (other tasks)."""
    import json

    from finetune.cli.inputs import load_conversations, load_inputs
    from finetune.tasks.base import PredictRequest
    from finetune.tasks.predict import family_of_run

    family, recipe = family_of_run(run_dir)  # first: a folder without a model fails with a clear message
    conversations = load_conversations(message or [], file)
    if conversations and not getattr(family.task_class, "supports_chat", False):
        from finetune.errors import UserError

        raise UserError(f"--message and conversation files are for chat runs; {run_dir} is a {family.name} run. "
                        f"Pass --text.")
    generation = {key: value for key, value in {
        "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "top_k": top_k,
        "num_beams": num_beams}.items() if value is not None}
    if temperature is not None or top_p is not None or top_k is not None:
        generation["do_sample"] = True
    inputs = [] if conversations else load_inputs([*(text or []), *(prompt or [])], text_pair or [], file)
    request = PredictRequest(inputs, generation, batch_size=batch_size, stream=not json_output and sys.stdout.isatty(),
                             conversations=conversations, system=system)
    for record in family.task_class.predict(run_dir, recipe, family, request):
        if json_output:
            typer.echo(json.dumps({key: value for key, value in record.items() if key != "streamed"},
                                  ensure_ascii=False))
        elif (line := family.task_class.format_prediction(record)) is not None:
            typer.echo(line)


@app.command()
@user_errors
def evaluate(
    checkpoints: Annotated[list[str] | None, typer.Argument(
        help="Run directories, checkpoint-N folders, model folders, Hub ids or LoRA adapters. With a suite: "
             "TASK=CHECKPOINT pairs (sst2=runs/sst2), or a folder of per-task runs.", show_default=False)] = None,
    benchmark: Annotated[str | None, typer.Option(
        "--benchmark", "-b", help="A task (glue/sst2), a suite (glue) or a benchmark YAML file. "
                                  "[default: each run's own evaluation data]")] = None,
    dataset: Annotated[str | None, typer.Option(
        help="Score on any dataset instead: a Hub id, glue/<task>, or a local file or folder.")] = None,
    split: Annotated[str | None, typer.Option(help="Split to score. Default: the evaluation split(s).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Score only the first N examples of each split.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Evaluation batch size (scores do not depend on it).")] = 32,
    data_dir: Annotated[Path | None, typer.Option(
        help="Folder of GLUE data on disk. Default: the run's data.data_dir.")] = None,
    output_dir: Annotated[Path, typer.Option(
        help="Results go to OUTPUT_DIR/<checkpoint>/results_<time>.json (lm-eval's layout).")] = Path("results"),
    bootstrap_iters: Annotated[int, typer.Option(
        min=0, help="Resamples for the metrics' standard errors (lm-eval's bootstrap; BLEU and chrF use at most "
                    "100). 0: none.")] = 1000,
    all_checkpoints: Annotated[bool, switch(
        "--all-checkpoints",
        help="Score every checkpoint-N of each run; write a metric-by-step table and plot.")] = False,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Recipe overrides for the evaluation, e.g. data.max_length=256, generation.num_beams=4, "
                      "task=translation.")] = None,
) -> None:
    """Score checkpoints on a benchmark: finetune evaluate runs/a runs/b --benchmark glue/sst2"""
    from finetune.eval.run import run_evaluation

    report = run_evaluation(
        checkpoints or [], benchmark=benchmark, dataset=dataset, split=split, limit=limit, batch_size=batch_size,
        data_dir=None if data_dir is None else str(data_dir), output_dir=output_dir, all_checkpoints=all_checkpoints,
        overrides=overrides, bootstrap_iters=bootstrap_iters, echo=lambda line: typer.echo(line, err=True))
    typer.echo("")
    typer.echo(report.text, nl=False)
    typer.echo("\nWritten: " + ", ".join(str(path) for path in report.files))


@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory trained with LoRA (--lora).")],
    merge: Annotated[bool, switch("--merge", help="Fold the adapters into the base weights.")] = False,
    output_dir: Annotated[Path | None, typer.Option(help="Where to write. Default: RUN_DIR/merged.")] = None,
) -> None:
    """Write a plain transformers model from a LoRA run (--merge), loadable without PEFT."""
    from finetune.errors import UserError
    from finetune.models.lora import export_merged, require_adapter_folder
    from finetune.tasks.predict import family_of_run

    if not merge:
        raise UserError("Nothing to do: pass --merge to write the base model with the adapters folded in.")
    family, _ = family_of_run(require_adapter_folder(run_dir))
    written = export_merged(run_dir, output_dir or run_dir / "merged", family.auto_model)
    from finetune.tasks.chat_template import save_stop_tokens

    save_stop_tokens(written)  # a chat run: pipelines stop at the template's end-of-turn token too
    typer.echo(f"Merged model written to {written}")


@app.command()
@user_errors
def push(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    repo_id: Annotated[str, typer.Option(help="Hub repository: user/name or org/name.")],
    private: Annotated[bool, switch(help="Create the repository as private.")] = False,
) -> None:
    """Upload a run (model, tokenizer, model card, metrics, plots) to the Hugging Face Hub."""
    from finetune.outputs.push import push_run

    typer.echo(f"Pushed {run_dir} to {push_run(run_dir, repo_id, private=private)}")


@app.command("env")
@user_errors
def env_command() -> None:
    """Versions, devices, precision support, the Accelerate config in effect, and whether the Hub answers."""
    from finetune.training.environment import describe

    rows = describe()
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"{name:<{width}}  {value}")


@app.command()
@user_errors
def smoke(
    task: Annotated[str | None, typer.Option(
        help=f"Check only this task family ({_FAMILY_NAMES}). Default: every family.",
        show_default=False)] = None,
    output_dir: Annotated[Path | None, typer.Option(
        help="Keep the data, tiny models and runs here. Default: a temporary folder, removed afterwards.",
        show_default=False)] = None,
) -> None:
    """Offline self-check: a tiny model per task family is trained, evaluated, saved, reloaded and asked to predict."""
    from finetune.training.smoke import run_smoke

    raise typer.Exit(run_smoke(output_dir, task, echo=typer.echo))


@app.command("tiny-model")
@user_errors
def tiny_model(
    task: Annotated[str, typer.Option(help=f"Task family the model is for: {_FAMILY_NAMES}.", show_default=False)],
    output_dir: Annotated[Path, typer.Option(help="Folder to write the model and tokenizer to.",
                                             show_default=False)],
    train_file: Annotated[list[Path] | None, typer.Option(
        help="Data whose text the tokenizer learns (csv, tsv, json, jsonl, parquet, txt, a folder, or a prefix "
             "of line-aligned files); repeatable. Default: finetune smoke's toy data.", show_default=False)] = None,
    vocab_size: Annotated[int | None, typer.Option(
        min=50, help="Tokenizer vocabulary size. Default: a few hundred tokens.", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
) -> None:
    """Write a small random model (2 layers, width 32) of a task family, offline: try every command without the Hub.
    Pass it to --model."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the Hub
    from finetune.training.smoke import write_tiny_model
    from finetune.training.trainer import configure_library_logging

    configure_library_logging()
    folder, built = write_tiny_model(task, output_dir, train_file or [], vocab_size, seed)
    typer.echo(f"{folder}: {built}")
