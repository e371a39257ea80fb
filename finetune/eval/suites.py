"""Benchmarks for `finetune evaluate`: what to score a checkpoint on, and how a suite's tasks add up to one score.

A benchmark is one or more tasks, each a dataset (and split) to score on. It is named on the command line as

- a suite: a YAML file under `recipes/benchmarks/` (`glue`), or any YAML file of the same shape;
- one task of a suite: `glue/sst2`;
- any dataset: `--dataset NAME --split SPLIT` (a Hub id, a local file or folder, glue/<task>);
- nothing: a run directory is scored on its own evaluation data, from its recipe.yaml.

The suite score (GLUE's "score") is the mean of the task scores, and a task's score is the mean of its metrics over
its splits. That is how the GLUE leaderboard computes it; see `suite_score`. Pure Python and pydantic only: no torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from finetune.errors import UserError, did_you_mean

# What `DataSection` key a benchmark task may set besides the source (columns, labels, prefixes, lengths).
_DATA_SOURCE_KEYS = ("dataset", "config", "data_dir", "validation_file")


class BenchmarkTask(BaseModel):
    """One dataset to score on. `data` takes any other recipe `data.*` key (text_columns, label_column, ...)."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(None, description="The task it scores checkpoints as. Default: from the dataset.")
    dataset: str | None = Field(None, description="glue/<task>, a Hub id or a local path.")
    config: str | None = Field(None, description="Hub dataset configuration.")
    data_dir: str | None = Field(None, description="GLUE data folder. Default: --data-dir, else the run's.")
    validation_file: str | None = Field(None, description="A local file to score on (relative: under the data_dir).")
    splits: list[str] | None = Field(None, description="Splits scored. Default: the dataset's evaluation splits.")
    metrics: list[str] | None = Field(None, description="Metrics that make the task score. Default: the task's main.")
    data: dict[str, Any] = Field(default_factory=dict, description="Other recipe data.* settings.")
    own_data: bool = Field(False, exclude=True, description="Internal: the run's own evaluation data.")

    @model_validator(mode="before")
    @classmethod
    def _split_alias(cls, values: Any) -> Any:
        if isinstance(values, dict) and "split" in values:
            values = dict(values)
            split = values.pop("split")
            values.setdefault("splits", [split] if isinstance(split, str) else split)
        return values

    def data_section(self, data_dir: str | None) -> dict[str, Any]:
        """The recipe `data:` keys that point at this task's data."""
        section: dict[str, Any] = {key: getattr(self, key) for key in _DATA_SOURCE_KEYS if getattr(self, key)}
        if self.data_dir is None and data_dir:
            section["data_dir"] = data_dir
        folder = section.get("data_dir")
        if self.validation_file and folder and not Path(self.validation_file).expanduser().is_absolute():
            # A shipped benchmark names its files inside the shared data folder (wnut17: ner/wnut17/...).
            section["validation_file"] = str(Path(folder).expanduser() / self.validation_file)
        section.update(self.data)
        for key in ("validation_file", "few_shot_file"):
            file = section.get(key)
            if file and not Path(file).expanduser().exists() and not Path(file).is_absolute():
                # A file named relative to the data folder (gsm8k.yaml: chat/gsm8k/test.jsonl under --data-dir).
                if not (self.data_dir or data_dir):
                    raise UserError(f"Benchmark file {file} not found: pass --data-dir FOLDER (the folder it is in).")
                section[key] = str(Path(self.data_dir or data_dir or "").expanduser() / file)
        return section


class Benchmark(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    score_name: str | None = Field(None, description="Name of the suite score (glue_score); none: no suite score.")
    scale: float = Field(1.0, description="Scores are multiplied by this (GLUE reports x100).")
    tasks: dict[str, BenchmarkTask]
    source: str | None = Field(None, exclude=True)

    @property
    def slug(self) -> str:
        return slugify(self.name.replace("/", "-"))

    @property
    def is_suite(self) -> bool:
        return self.score_name is not None


def benchmarks_dir() -> Path:
    from finetune.config.loading import shipped_recipes_dir

    return shipped_recipes_dir() / "benchmarks"


def shipped_benchmarks() -> list[str]:
    folder = benchmarks_dir()
    return sorted(path.stem for path in folder.glob("*.yaml")) if folder.is_dir() else []


def load_benchmark_file(path: Path) -> Benchmark:
    from finetune.config.loading import read_yaml

    data = read_yaml(path)
    data.setdefault("name", path.stem)
    try:
        benchmark = Benchmark.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"'{'.'.join(str(p) for p in item['loc'])}': {item['msg']}" for item in error.errors())
        raise UserError(f"{path}: not a valid benchmark file ({problems}).") from error
    benchmark.source = str(path)
    if not benchmark.tasks:
        raise UserError(f"{path}: a benchmark needs at least one entry under tasks:.")
    return benchmark


def resolve_benchmark(name: str) -> Benchmark:
    """A benchmark from a YAML file path, a shipped suite name (glue) or one task of one (glue/sst2)."""
    path = Path(name).expanduser()
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"Benchmark file not found: {path}.")
        return load_benchmark_file(path)
    shipped = benchmarks_dir() / f"{name}.yaml"
    if shipped.is_file():
        return load_benchmark_file(shipped)
    suite_name, _, task_name = name.partition("/")
    suite_file = benchmarks_dir() / f"{suite_name}.yaml"
    if task_name and suite_file.is_file():
        suite = load_benchmark_file(suite_file)
        key = find_task_key(task_name, suite.tasks)
        if key is None:
            raise UserError(f"'{task_name}' is not a task of the {suite_name} benchmark."
                            f"{did_you_mean(task_name, suite.tasks)} Tasks: {', '.join(suite.tasks)}.")
        return Benchmark(name=f"{suite.name}/{key}", description=suite.description, scale=suite.scale,
                         tasks={key: suite.tasks[key]}, source=suite.source)
    raise UserError(f"Unknown benchmark '{name}'.{did_you_mean(name, shipped_benchmarks())} Give a suite "
                    f"({', '.join(shipped_benchmarks()) or 'none shipped'}), one of its tasks (glue/sst2), or a "
                    f"benchmark YAML file; to score on any dataset use --dataset NAME --split SPLIT.")


def dataset_benchmark(dataset: str, split: str | None) -> Benchmark:
    """`--dataset X --split S`: a one-task benchmark on any dataset."""
    path = Path(dataset).expanduser()
    source = {"validation_file": dataset} if path.is_file() else {"dataset": dataset}
    name = path.stem if path.is_file() else dataset
    label = slugify(name.replace("/", "-")) + (f"-{split}" if split else "")
    task = BenchmarkTask(**source, splits=[split] if split else None)
    return Benchmark(name=label, tasks={slugify(name.split("/")[-1]) or "data": task})


def own_data_benchmark(recipe: Any) -> Benchmark:
    """The evaluation data a run was trained with (its recipe's data section)."""
    source = recipe.data.dataset or recipe.data.validation_file or recipe.data.train_file or "data"
    path = Path(source)
    name = path.stem if path.suffix else source.replace("/", "-")
    return Benchmark(name=slugify(name), tasks={slugify(name): BenchmarkTask(own_data=True)})


def find_task_key(name: str, keys: Any) -> str | None:
    """The suite task a name stands for: exact, or by its last word(s) (glue-sst2, classification-glue-SST-2)."""
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    suffixes = {"".join(words[start:]) for start in range(len(words))}
    matches = [key for key in keys if re.sub(r"[^a-z0-9]", "", key.lower()) in suffixes]
    return matches[0] if len(matches) == 1 else None


def result_key(task_key: str, split: str, splits: list[str]) -> str:
    """The results entry of one split: the task key, or task_<split> when it has several (mnli_matched)."""
    if len(splits) == 1:
        return task_key
    return f"{task_key}_{split.removeprefix('validation_')}"


def slugify(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or "model"


# ---- scores ---------------------------------------------------------------------------------------------------

def task_score(split_metrics: list[dict[str, float]], metrics: list[str]) -> float:
    """Mean over the task's splits of the mean of its metrics: MRPC/QQP (F1 + accuracy) / 2, STS-B (Pearson +
    Spearman) / 2, MNLI (matched + mismatched accuracy) / 2."""
    per_split = []
    for values in split_metrics:
        missing = [name for name in metrics if name not in values]
        if missing:
            raise UserError(f"Metric '{missing[0]}' was not computed; computed: {', '.join(sorted(values))}. "
                            f"Fix the benchmark's metrics: list.")
        per_split.append(sum(values[name] for name in metrics) / len(metrics))
    return sum(per_split) / len(per_split)


def suite_score(task_scores: dict[str, float], tasks: list[str]) -> float | None:
    """The unweighted mean of the task scores, or None unless every task of the suite was scored.

    This is the GLUE score as the GLUE leaderboard (gluebenchmark.com/leaderboard) computes it, Wang et al. 2019,
    "GLUE: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding", section 4: "we use the
    unweighted average of the metrics as the task score" and the macro-average of the nine task scores as the
    overall score. MNLI is one task of the nine, its score the mean of matched and mismatched accuracy; the
    diagnostic set (AX) is not part of it. Check: the leaderboard's BERT-large row (CoLA 60.5, SST-2 94.9, MRPC
    89.3/85.4, STS-B 87.6/86.5, QQP 72.1/89.3, MNLI 86.7/85.9, QNLI 92.7, RTE 70.1, WNLI 65.1) gives 80.5, its
    published score; counting MNLI-m and MNLI-mm as two tasks would give 81.1. (BERT's paper averages yet another
    way, without WNLI and with MNLI-m/mm apart, for its 82.1: not the GLUE score.) tests/test_evaluate.py checks it.
    """
    if not tasks or any(task not in task_scores for task in tasks):
        return None
    return sum(task_scores[task] for task in tasks) / len(tasks)
