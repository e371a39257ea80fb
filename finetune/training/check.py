"""`finetune check` / `--dry-run`: everything that can go wrong before training, found in seconds.

Resolves the recipe, opens the data, checks columns and labels (the task's own setup), loads the tokenizer (not
the weights), tokenizes a sample, and reports label balance, truncation, steps and devices. Nothing is trained
and nothing is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.config.schema import Recipe
from finetune.data.sources import load_data
from finetune.errors import UserError
from finetune.training.defaults import with_default_batch_and_epochs
from finetune.training.distributed import world_size

SAMPLE_SIZE = 1000


@dataclass
class CheckReport:
    lines: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, value: Any) -> None:
        self.lines.append((name, str(value)))

    def render(self) -> str:
        width = max(len(name) for name, _ in self.lines)
        return "\n".join(f"  {name:<{width}}  {value}" for name, value in self.lines)


def _devices() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return "cpu"


_OUTPUT_STATES = {"new": "new", "unstarted": "an unstarted run, reused", "replace": "a run, replaced (--overwrite)",
                  "resume": "a run, resumed"}


def check(recipe: Recipe, overwrite: bool = False, recipe_file: Path | None = None) -> CheckReport:
    """The report of a run that would start; raises the UserError the real run would refuse with."""
    from finetune.models.loading import load_config, load_tokenizer
    from finetune.outputs.lock import holder
    from finetune.outputs.run_dir import METRICS_FILE, inspect_run_dir
    from finetune.tasks import get_task
    from finetune.training.arguments import check_trackers, engine_options, has_cuda
    from finetune.training.early_stopping import early_stopping_callback
    from finetune.training.run import protected_paths
    from finetune.training.trainer import configure_library_logging

    report = CheckReport()
    run_dir = recipe.resolved_output_dir()
    # The run directory first, exactly as the run checks it (cheap, and the most surprising refusal).
    if recipe.train.resume and run_dir.is_dir():
        if (run_dir / METRICS_FILE).exists():
            raise UserError(f"{run_dir} holds a finished run (metrics.json): nothing to resume. Pass --overwrite "
                            f"without --resume to train again, or choose another --output-dir.")
        state = "resume"
    else:
        state = inspect_run_dir(run_dir, overwrite, protected_paths(recipe, recipe_file))
    writer = holder(run_dir)
    if writer is not None:
        raise UserError(f"{run_dir} is being written by {writer}. Wait for it to finish, or choose another "
                        f"--output-dir.")
    check_trackers(recipe.train.report_to)
    engine_options(recipe.distributed, on_gpu=not recipe.train.use_cpu and has_cuda())  # DeepSpeed/FSDP usable here
    if recipe.push_to_hub:
        from finetune.outputs.push import check_push_target

        check_push_target(recipe.push_to_hub)
    task = get_task(recipe)
    report.add("task", recipe.task)
    report.add("model", recipe.model.name)
    data = load_data(recipe.data)
    task.setup(data)
    train = data.train
    assert train is not None  # load_data refuses data without a training split
    report.add("data", data.source)
    report.add("train rows", len(train))
    for name, split in data.eval.items():
        report.add(f"eval examples ({name})", len(split))
    for name, value in task.check_report(data):
        report.add(name, value)
    if early_stopping_callback(recipe.train, bool(data.eval) and recipe.train.eval_strategy != "no"):
        report.add("early stopping", f"after {recipe.train.early_stopping_patience} evaluations without improvement "
                                     f"of {recipe.train.metric_for_best_model or task.main_metric}")

    configure_library_logging()
    config = load_config(recipe.model)
    tokenizer = load_tokenizer(recipe.model, config, recipe.data.max_length, **task.tokenizer_options(config))
    sample = train.select(range(min(SAMPLE_SIZE, len(train))))
    lengths = [len(ids) for ids in task.tokenize(sample, tokenizer)["input_ids"]]
    lines, examples = task.check_tokens(lengths, len(sample), len(train))
    for name, value in lines:
        report.add(name, value)

    settings = with_default_batch_and_epochs(recipe, examples, world_size()).train  # as run() will choose it
    assert settings.batch_size is not None and settings.epochs is not None
    per_step = settings.batch_size * settings.gradient_accumulation_steps
    steps_per_epoch = math.ceil(examples / per_step)
    total = settings.max_steps or math.ceil(settings.epochs * steps_per_epoch)
    report.add("steps", f"{total} ({steps_per_epoch} per epoch at {per_step} examples per step per device)")
    report.add("devices", "cpu" if settings.use_cpu else _devices())
    report.add("output", f"{run_dir} ({_OUTPUT_STATES[state]})")
    if recipe.push_to_hub:
        report.add("push to", f"{recipe.push_to_hub} (token may write there)")
    return report
