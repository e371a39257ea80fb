"""`finetune check` / `--dry-run`: everything that can go wrong before training, found in seconds.

Resolves the recipe, opens the data, checks columns and labels (the task's own setup), loads the tokenizer (not
the weights), tokenizes a sample, and reports label balance, truncation, steps and devices. Nothing is trained
and nothing is written.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from finetune.data.sources import load_data
from finetune.config.recipe import Recipe

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


def _label_counts(task: Any, split: Any) -> str | None:
    if getattr(task, "is_regression", True) or not getattr(task, "label_names", None):
        return None
    counts = Counter(task.label_names[task.label_id(value)] for value in split[task.label_column])
    total = sum(counts.values())
    return ", ".join(f"{name} {counts[name]} ({counts[name] / total:.0%})" for name in task.label_names)


def check(recipe: Recipe) -> CheckReport:
    from finetune.models.loading import load_config, load_tokenizer
    from finetune.tasks import get_task
    from finetune.training.run import configure_library_logging

    report = CheckReport()
    run_dir = recipe.resolved_output_dir()
    report.add("task", recipe.task)
    report.add("model", recipe.model.name)
    task = get_task(recipe)
    data = load_data(recipe.data)
    task.setup(data)
    report.add("data", data.source)
    report.add("train rows", len(data.train))
    for name, split in data.eval.items():
        report.add(f"eval examples ({name})", len(split))
    if hasattr(task, "text_columns"):
        report.add("text columns", ", ".join(task.text_columns))
    if (labels := _label_counts(task, data.train)) is not None:
        report.add("labels (train)", labels)

    configure_library_logging()
    config = load_config(recipe.model)
    tokenizer = load_tokenizer(recipe.model, config, recipe.data.max_length)
    sample = data.train.select(range(min(SAMPLE_SIZE, len(data.train))))
    lengths = [len(ids) for ids in task.tokenize(sample, tokenizer)["input_ids"]]
    examples = len(data.train)
    if getattr(task, "format", None) == "text":  # packed blocks: every one is full by design, none truncated
        examples = round(len(lengths) * len(data.train) / max(len(sample), 1))
        report.add("packed blocks", f"about {examples} blocks of {lengths[0] if lengths else 0} tokens "
                                    f"(from {len(lengths)} in the first {len(sample)} rows)")
    elif lengths:
        at_limit = sum(length >= recipe.data.max_length for length in lengths)
        report.add("tokens per example", f"mean {sum(lengths) / len(lengths):.1f}, max {max(lengths)} "
                                         f"(sample of {len(lengths)})")
        report.add("truncated", f"{at_limit} of {len(lengths)} sampled examples reach max_length "
                                f"{recipe.data.max_length}")

    train = recipe.train
    per_step = train.batch_size * train.gradient_accumulation_steps
    steps_per_epoch = math.ceil(examples / per_step)
    total = train.max_steps or math.ceil(train.epochs * steps_per_epoch)
    report.add("steps", f"{total} ({steps_per_epoch} per epoch at {per_step} examples per step per device)")
    report.add("devices", "cpu" if train.use_cpu else _devices())
    report.add("output", f"{run_dir} ({'exists' if run_dir.exists() else 'new'})")
    return report
