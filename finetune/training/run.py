"""`run(recipe)`: the one code path that trains, evaluates, saves and reports for every task.

Order matters for the user's time: the recipe and the data are checked (columns, labels) before the model is
downloaded or loaded, and the run directory is checked before anything is computed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.config.schema import Recipe
from finetune.console import verbosity
from finetune.data.sources import dataset_card_entry, load_data
from finetune.errors import TrainingInterrupted, UserError
from finetune.outputs.card import model_card
from finetune.outputs.files import (
    library_versions,
    readable_as_umask_allows,
    write_json_atomic,
    write_text_atomic,
)
from finetune.outputs.plots import write_plots
from finetune.outputs.run_dir import (
    CARD_FILE,
    METRICS_FILE,
    PREDICTIONS_DIR,
    RECIPE_FILE,
    STAGING_DIR,
    TRAINER_STATE_FILE,
    ensure_disk_space,
    move_into,
    prepare_run_dir,
)
from finetune.tasks import get_task
from finetune.training.arguments import build_training_arguments, check_trackers
from finetune.training.checkpoints import interrupt_callback, resolve_resume
from finetune.training.distributed import barrier, is_main_process
from finetune.training.trainer import configure_library_logging, evaluating_in_order

logger = logging.getLogger("finetune")


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    main_metric: str
    is_main_process: bool = True


def run(recipe: Recipe, overwrite: bool = False) -> RunResult:
    run_dir = recipe.resolved_output_dir()
    # Before the run directory exists: a start that fails here leaves nothing that blocks the re-run.
    check_trackers(recipe.train.report_to)
    if recipe.push_to_hub and is_main_process():
        from finetune.outputs.push import check_push_target

        check_push_target(recipe.push_to_hub)  # the upload comes after training: fail now, not then
    if recipe.train.resume and run_dir.is_dir():
        if (run_dir / METRICS_FILE).exists():
            raise UserError(f"{run_dir} holds a finished run (metrics.json): nothing to resume. Pass --overwrite "
                            f"without --resume to train again, or choose another --output-dir.")
    elif is_main_process():
        prepare_run_dir(run_dir, overwrite)
    barrier()  # the other processes wait until the main one has checked and cleared the run directory
    resume_from = resolve_resume(run_dir, recipe.train.resume)

    task = get_task(recipe)
    data = load_data(recipe.data)
    task.setup(data)  # column and label errors surface here, before any model is loaded
    # Written first, so an interrupted run is recognisable (and resumable) as a run directory.
    if is_main_process():
        write_text_atomic(run_dir / RECIPE_FILE, recipe.model_copy(update={
            "train": recipe.train.model_copy(update={"resume": False})}).to_yaml())

    configure_library_logging()
    from transformers import set_seed

    set_seed(recipe.train.seed)
    model, tokenizer = task.load_model()
    if recipe.peft.enabled:
        from finetune.models.lora import apply_lora

        model = apply_lora(model, recipe.peft, task.family.peft_task_type)
    from finetune.models.lora import parameter_counts

    parameters = parameter_counts(model)  # trainable vs total: what LoRA saves

    train_set = task.tokenize(data.train, tokenizer)
    eval_sets = {name: task.tokenize(split, tokenizer) for name, split in data.eval.items()}
    test_sets = {name: task.tokenize(split, tokenizer) for name, split in data.test.items()}

    ensure_disk_space(run_dir, parameters["total_parameters"])
    args = build_training_arguments(recipe, task, run_dir, list(eval_sets))
    single_eval = next(iter(eval_sets.values())) if len(eval_sets) == 1 else (eval_sets or None)
    trainer = evaluating_in_order(task.trainer_class())(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=single_eval,
        processing_class=tokenizer,
        data_collator=task.data_collator(tokenizer),
        compute_metrics=task.compute_metrics if eval_sets else None,
        callbacks=[interrupt := interrupt_callback()],
    )
    if "tensorboard" in args.report_to:
        from finetune.compat import keep_tensorboard_events_in

        keep_tensorboard_events_in(trainer, run_dir)  # not ./runs of the working directory
    if verbosity() == "quiet":
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # the per-log dicts printed without a terminal
    if resume_from is None:
        task.before_training(trainer, run_dir)
    else:
        logger.warning("Resuming from %s", resume_from)
    train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if interrupt.interrupted:
        raise TrainingInterrupted(run_dir, trainer.state.global_step)

    metrics: dict[str, Any] = dict(train_output.metrics)
    for name, tokenized in eval_sets.items():
        prefix = "eval" if len(eval_sets) == 1 else f"eval_{name}"
        metrics.update(task.write_predictions(trainer, data.eval[name], tokenized,
                                              run_dir / PREDICTIONS_DIR / f"{name}.jsonl", prefix))
    for name, tokenized in test_sets.items():
        task.write_predictions(trainer, data.test[name], tokenized, run_dir / PREDICTIONS_DIR / f"{name}.jsonl",
                               f"test_{name}")

    metrics.update(task.after_training(trainer, run_dir))

    # Saved under a temporary name, then renamed into place: an interrupted save never leaves a model that looks
    # complete. Every process takes part (sharded engines); only the main one writes.
    staging = run_dir / STAGING_DIR
    trainer.save_model(str(staging))
    if trainer.is_world_process_zero():
        if recipe.peft.enabled:
            from finetune.models.lora import save_base_config

            save_base_config(trainer.model, staging)
        move_into(staging, run_dir)
        readable_as_umask_allows(run_dir)
        trainer.state.save_to_json(str(run_dir / TRAINER_STATE_FILE))
        metrics.update(
            task=recipe.task,
            model=recipe.model.name,
            data=data.source,
            train_samples=len(train_set),
            eval_samples={name: len(split) for name, split in eval_sets.items()},
            global_step=trainer.state.global_step,
            seed=recipe.train.seed,
            world_size=trainer.args.world_size,
            mixed_precision="bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "no",
            resumed_from=str(resume_from) if resume_from else None,
            **parameters,
            best_checkpoint=trainer.state.best_model_checkpoint,
            versions=library_versions(),
        )
        write_plots(run_dir, trainer.state.log_history)
        labels: dict[str, Any] = {}
        if recipe.peft.enabled and task.family.new_head:  # a classifier adapter: its head needs the labels
            from finetune.models.lora import label_kwargs

            labels = label_kwargs(run_dir)
        write_text_atomic(run_dir / CARD_FILE, model_card(recipe, metrics, run_dir, task.family.pipeline_tag,
                                                           dataset_card_entry(recipe.data), task.family.auto_model,
                                                           labels))
        # metrics.json last: its presence marks a finished run.
        write_json_atomic(run_dir / METRICS_FILE, metrics)
        if recipe.push_to_hub:
            from finetune.outputs.push import push_run

            metrics["pushed_to"] = push_run(run_dir, recipe.push_to_hub)
    return RunResult(run_dir=run_dir, metrics=metrics, main_metric=task.main_metric,
                     is_main_process=trainer.is_world_process_zero())
