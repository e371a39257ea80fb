"""`run(recipe)`: the one code path that trains, evaluates, saves and reports for every task.

Order matters for the user's time: the recipe and the data are checked (columns, labels) before the model is
downloaded or loaded, and the run directory is checked before anything is computed.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.config.schema import Recipe
from finetune.console import verbosity
from finetune.data.sources import dataset_card_entry, load_data
from finetune.errors import TrainingInterrupted, UserError
from finetune.outputs.card import model_card
from finetune.outputs.files import library_versions, readable_as_umask_allows, write_json_atomic, write_text_atomic
from finetune.outputs.lock import RunLock
from finetune.outputs.plots import write_plots
from finetune.outputs.run_dir import (
    CARD_FILE,
    METRICS_FILE,
    PREDICTIONS_DIR,
    RECIPE_FILE,
    STAGING_DIR,
    TRAINER_STATE_FILE,
    checkpoint_step,
    clear_run_dir,
    ensure_disk_space,
    inspect_run_dir,
    mark_run_dir,
    move_into,
    run_marker,
    size_of,
)
from finetune.tasks import get_task
from finetune.training.arguments import build_training_arguments, check_trackers
from finetune.training.checkpoints import interrupt_callback, resolve_resume
from finetune.training.defaults import with_default_batch_and_epochs, with_default_learning_rate
from finetune.training.distributed import barrier, is_main_process, world_size
from finetune.training.early_stopping import early_stopping_callback, early_stopping_report
from finetune.training.trainer import configure_library_logging, evaluating_in_order

logger = logging.getLogger("finetune")


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    main_metric: str
    is_main_process: bool = True


def protected_paths(recipe: Recipe, recipe_file: Path | None = None) -> dict[str, Path]:
    """The user's inputs a run directory must never contain (--overwrite would delete them): data, model, recipe."""
    candidates = {"the training data": recipe.data.train_file, "the validation data": recipe.data.validation_file,
                  "the test data": recipe.data.test_file, "the data folder": recipe.data.data_dir,
                  "the dataset": recipe.data.dataset, "the model": recipe.model.name,
                  "the DeepSpeed config": recipe.distributed.deepspeed, "the recipe": recipe_file}
    return {what: Path(str(path)).expanduser() for what, path in candidates.items() if path}


def run(recipe: Recipe, overwrite: bool = False, recipe_file: Path | None = None,
        callbacks: list[Any] | None = None) -> RunResult:
    """Train, evaluate and save one run. Nothing in the run directory is removed or written until the recipe, the
    data, the labels, the model and the tokenizer have all loaded, and only one process writes a run at a time.
    `callbacks`: more TrainerCallbacks (finetune sweep's pruning)."""
    run_dir = recipe.resolved_output_dir()
    # Before the run directory is touched: a start that fails here leaves nothing that blocks the re-run.
    check_trackers(recipe.train.report_to)
    if recipe.push_to_hub and is_main_process():
        from finetune.outputs.push import check_push_target

        check_push_target(recipe.push_to_hub)  # the upload comes after training: fail now, not then
    lock = None
    state = "resume"
    if is_main_process():
        if recipe.train.resume and run_dir.is_dir():
            if (run_dir / METRICS_FILE).exists():
                raise UserError(f"{run_dir} holds a finished run (metrics.json): nothing to resume. Pass "
                                f"--overwrite without --resume to train again, or choose another --output-dir.")
        else:
            state = inspect_run_dir(run_dir, overwrite, protected_paths(recipe, recipe_file))
        lock = RunLock(run_dir).acquire()
        if lock.stale_owner:
            logger.warning("%s was left locked by process %s, which has ended (killed?); taking it over.",
                           run_dir, lock.stale_owner.get("pid"))
    try:
        if lock is not None and state != "resume":
            # Again, under the lock: another run may have finished in the folder since the first look.
            state = inspect_run_dir(run_dir, overwrite, protected_paths(recipe, recipe_file))
        result = _run_locked(recipe, run_dir, state, callbacks or [])
    except BaseException:
        if lock is not None:
            # A run that fails before training leaves nothing that blocks the corrected command: only the folder
            # it created (now empty of everything but the lock) goes, never anything that was there before.
            lock.release(remove_dir=lock.created_dir and not _started(run_dir))
        raise
    if lock is not None:
        lock.release()
    return result


def _started(run_dir: Path) -> bool:
    """Whether anything beyond the marker, recipe and lock was written: then the folder stays (resumable).
    When not, the marker and recipe are removed here, so the caller can remove the (then empty) folder."""
    from finetune.outputs.run_dir import LOCK_FILE, MARKER_FILE, OWNER_FILE

    if not run_dir.is_dir():
        return False
    leftover = {path.name for path in run_dir.iterdir()} - {LOCK_FILE, OWNER_FILE, MARKER_FILE, RECIPE_FILE}
    if leftover:
        return True
    for name in (MARKER_FILE, RECIPE_FILE):
        (run_dir / name).unlink(missing_ok=True)
    return False


def _run_locked(recipe: Recipe, run_dir: Path, state: str, callbacks: list[Any]) -> RunResult:
    barrier()  # the other processes wait until the main one has checked the run directory and holds its lock
    resume_from = resolve_resume(run_dir, recipe.train.resume)

    task = get_task(recipe)
    data = load_data(recipe.data)
    task.setup(data)  # column and label errors surface here, before any model is loaded
    stopper = early_stopping_callback(recipe.train, bool(data.eval) and recipe.train.eval_strategy != "no")

    configure_library_logging()
    from transformers import set_seed

    set_seed(recipe.train.seed)
    model, tokenizer = task.load_model()
    if recipe.peft.enabled:
        from finetune.models.lora import apply_lora

        model = apply_lora(model, recipe.peft, task.family.peft_task_type)
    from finetune.models.lora import parameter_counts

    parameters = parameter_counts(model)  # trainable vs total: what LoRA saves
    # No learning rate in the recipe: the model's size chooses it (defaults.py); recipe.yaml and the card record it.
    recipe = with_default_learning_rate(recipe, parameters["total_parameters"])

    train_set = task.tokenize(data.train, tokenizer)
    # No batch size or epochs in the recipe: 32 and 3, smaller batches for a training set too small for 50 steps an
    # epoch, and 6 epochs when such a set is classified (defaults.py).
    recipe = with_default_batch_and_epochs(recipe, len(train_set), world_size())
    eval_sets = {name: task.tokenize(split, tokenizer) for name, split in data.eval.items()}
    test_sets = {name: task.tokenize(split, tokenizer) for name, split in data.test.items()}

    freed = size_of(run_dir) if state == "replace" else 0
    ensure_disk_space(run_dir, parameters["total_parameters"], freed)
    # Everything is checked: only now is an earlier run (--overwrite) removed, and the new one marked.
    run_id = None
    if is_main_process():
        if state in ("replace", "unstarted"):
            clear_run_dir(run_dir)
        marker = run_marker(run_dir)
        run_id = marker["run_id"] if marker and state == "resume" else mark_run_dir(run_dir)
        # Written before training, so an interrupted run is recognisable (and resumable) as a run directory.
        # Absolute paths: `finetune train RUN/recipe.yaml` works from any folder.
        write_text_atomic(run_dir / RECIPE_FILE, recipe.with_absolute_paths().model_copy(update={
            "train": recipe.train.model_copy(update={"resume": False})}).to_yaml())
    barrier()
    args = build_training_arguments(recipe, task, run_dir, list(eval_sets), len(train_set))
    single_eval = next(iter(eval_sets.values())) if len(eval_sets) == 1 else (eval_sets or None)
    trainer = evaluating_in_order(task.trainer_class())(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=single_eval,
        processing_class=tokenizer,
        data_collator=task.data_collator(tokenizer),
        compute_metrics=task.compute_metrics if eval_sets else None,
        callbacks=[interrupt := interrupt_callback(), *([stopper] if stopper else []), *callbacks],
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
    resumed_step = checkpoint_step(resume_from) if resume_from is not None else None
    if (resume_from is not None and resumed_step is not None and recipe.train.max_steps
            and resumed_step >= recipe.train.max_steps):
        # Killed after the checkpoint at max_steps (during predictions or the final save): training is done, and
        # the Trainer would take one step past max_steps if asked to resume. Load the checkpoint and finish.
        from finetune.compat import restore_finished_training

        train_metrics = restore_finished_training(trainer, resume_from)
    else:
        train_metrics = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None).metrics
    if interrupt.interrupted:
        raise TrainingInterrupted(run_dir, trainer.state.global_step)

    metrics: dict[str, Any] = dict(train_metrics)
    if stopper is not None:
        metrics["early_stopping"] = early_stopping_report(stopper, trainer.state, trainer.args)
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
    if trainer.is_world_process_zero() and staging.exists():
        shutil.rmtree(staging)  # a killed final save's partial files must not mix with this one's
    barrier()
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
            run_id=run_id,
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
