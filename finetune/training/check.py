"""`finetune check` / `--dry-run`: everything that can go wrong before training, found in seconds.

Resolves the recipe, opens the data, checks columns and labels (the task's own setup), loads the tokenizer (not
the weights), tokenizes a sample, and reports label balance, truncation, steps and devices. Nothing is trained
and nothing is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from finetune.config.schema import Recipe
from finetune.data.sources import load_data

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


def check(recipe: Recipe) -> CheckReport:
    from finetune.models.loading import load_config, load_tokenizer
    from finetune.tasks import get_task
    from finetune.training.arguments import check_trackers
    from finetune.training.trainer import configure_library_logging

    report = CheckReport()
    run_dir = recipe.resolved_output_dir()
    check_trackers(recipe.train.report_to)
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

    configure_library_logging()
    config = load_config(recipe.model)
    tokenizer = load_tokenizer(recipe.model, config, recipe.data.max_length)
    sample = train.select(range(min(SAMPLE_SIZE, len(train))))
    lengths = [len(ids) for ids in task.tokenize(sample, tokenizer)["input_ids"]]
    lines, examples = task.check_tokens(lengths, len(sample), len(train))
    for name, value in lines:
        report.add(name, value)

    settings = recipe.train
    per_step = settings.batch_size * settings.gradient_accumulation_steps
    steps_per_epoch = math.ceil(examples / per_step)
    total = settings.max_steps or math.ceil(settings.epochs * steps_per_epoch)
    report.add("steps", f"{total} ({steps_per_epoch} per epoch at {per_step} examples per step per device)")
    report.add("devices", "cpu" if settings.use_cpu else _devices())
    report.add("output", f"{run_dir} ({'exists' if run_dir.exists() else 'new'})")
    if recipe.push_to_hub:
        report.add("push to", f"{recipe.push_to_hub} (token may write there)")
    return report
