"""`finetune evaluate`: which checkpoint is scored on which task, the results files, tables and leaderboards.

    finetune evaluate runs/a runs/b --benchmark glue/sst2          two checkpoints, one task: a two-row leaderboard
    finetune evaluate --benchmark glue cola=runs/cola sst2=runs/sst2 ...        a suite, one checkpoint per task
    finetune evaluate runs --benchmark glue          a folder of per-task runs (runs/glue-cola, runs/glue-sst2, ...)
    finetune evaluate runs/a --all-checkpoints       every checkpoint-N of a run: metric-by-step table and plot

Each scored model gets OUTPUT_DIR/<model>/results_<time>.json and, per task, samples_<task>_<time>.jsonl, named and
laid out as lm-evaluation-harness writes them (results_files.py). Several models: OUTPUT_DIR/leaderboard-<benchmark>.md
and .csv.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.errors import UserError
from finetune.eval.checkpoints import Checkpoint, checkpoint_slug, resolve_checkpoint
from finetune.eval.leaderboard import leaderboard, markdown_table, metric_columns, plot_by_step, write_tables
from finetune.eval.results_files import date_id, results_path
from finetune.eval.scoring import SplitResult, evaluate_task
from finetune.eval.suites import (
    Benchmark,
    dataset_benchmark,
    find_task_key,
    own_data_benchmark,
    resolve_benchmark,
    suite_score,
    task_score,
)
from finetune.outputs.run_dir import checkpoints_of, is_model_folder
from finetune.tasks.metrics import higher_is_better


@dataclass
class Subject:
    """One model as the tables show it: one checkpoint, or one checkpoint per task of a suite."""

    name: str  # folder under OUTPUT_DIR
    label: str  # as shown in tables
    checkpoints: dict[str, Checkpoint]  # benchmark task -> checkpoint
    benchmark: Benchmark
    run: str | None = None  # --all-checkpoints: the run the checkpoint belongs to


@dataclass
class Scored:
    subject: Subject
    results: list[SplitResult]
    task_scores: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    missing: list[str] = field(default_factory=list)
    path: Path | None = None

    @property
    def main(self) -> str:
        benchmark = self.subject.benchmark
        if benchmark.score_name is not None:  # a suite
            return benchmark.score_name
        spec = next(iter(benchmark.tasks.values()))
        return (spec.metrics or [self.results[0].main_metric])[0] if self.results else "score"

    def row(self) -> dict[str, Any]:
        """The model's leaderboard row: main score first, then every metric, examples and speed."""
        row: dict[str, Any] = {"model": self.subject.label}
        keys = list(dict.fromkeys(result.key for result in self.results))
        if self.subject.benchmark.is_suite:
            row[self.main] = self.score
            row.update(self.task_scores)
        elif len(keys) == 1:
            row.update(self.results[0].metrics)
        else:  # one task, several splits (MNLI): their mean ranks, each split is shown
            values = [result.metrics.get(self.main) for result in self.results]
            present = [value for value in values if value is not None]
            row[self.main] = sum(present) / len(values) if len(present) == len(values) else None
            for result in self.results:
                row.update({f"{result.key}/{name}": value for name, value in result.metrics.items()})
        seconds = sum(result.runtime for result in self.results)
        row["n"] = sum(result.n for result in self.results)
        row["examples/s"] = row["n"] / seconds if seconds else None
        return row


def _plan(specs: list[str], benchmark: Benchmark | None, all_checkpoints: bool) -> list[Subject]:
    if not specs:
        raise UserError("Nothing to evaluate: pass one or more checkpoints (run directories, model folders, ...).")
    pairs = [spec for spec in specs if "=" in spec and not Path(spec).exists()]
    if pairs:
        return [_mapped_subject(specs, pairs, benchmark)]
    subjects: list[Subject] = []
    for spec in specs:
        if all_checkpoints:
            run = Path(spec)
            folders = checkpoints_of(run) if run.is_dir() else []
            if not folders:
                raise UserError(f"{spec} has no checkpoint-N folders to score (runs keep train.save_total_limit of "
                                f"them, and none with eval_strategy no).")
            for folder in folders:
                checkpoint = resolve_checkpoint(str(folder))
                subjects.append(_single(checkpoint, benchmark, run=spec))
        elif benchmark is not None and len(benchmark.tasks) > 1 and _is_runs_folder(Path(spec)):
            subjects.append(_folder_subject(Path(spec), benchmark))
        else:
            subjects.append(_single(resolve_checkpoint(spec), benchmark))
    return subjects


def _single(checkpoint: Checkpoint, benchmark: Benchmark | None, run: str | None = None) -> Subject:
    if benchmark is None:
        if checkpoint.recipe is None:
            raise UserError(f"{checkpoint.spec} has no recipe.yaml, so it has no evaluation data of its own: pass "
                            f"--benchmark (glue/sst2, glue, a YAML file) or --dataset NAME.")
        benchmark = own_data_benchmark(checkpoint.recipe)
    return Subject(checkpoint.slug, checkpoint.spec, dict.fromkeys(benchmark.tasks, checkpoint), benchmark, run)


def _is_runs_folder(path: Path) -> bool:
    return path.is_dir() and not is_model_folder(path)


def _folder_subject(folder: Path, benchmark: Benchmark) -> Subject:
    """A folder of per-task runs: runs/glue-sst2 (or runs/sst2, runs/classification-glue-sst2) scores sst2."""
    mapping: dict[str, Checkpoint] = {}
    for child in sorted(path for path in folder.iterdir() if path.is_dir()):
        key = find_task_key(child.name, benchmark.tasks)
        if key is None or not is_model_folder(child):
            continue
        if key in mapping:
            raise UserError(f"Both {mapping[key].spec} and {child} look like the {key} run of {folder}. Name them "
                            f"with TASK=CHECKPOINT pairs instead (for example {key}={child}).")
        mapping[key] = resolve_checkpoint(str(child))
    if not mapping:
        raise UserError(f"{folder} holds no model, and no run folders named after {benchmark.name} tasks "
                        f"({', '.join(benchmark.tasks)}).")
    return Subject(checkpoint_slug(str(folder)), str(folder), mapping, benchmark)


def _mapped_subject(specs: list[str], pairs: list[str], benchmark: Benchmark | None) -> Subject:
    if len(pairs) != len(specs):
        raise UserError("Give either checkpoints or TASK=CHECKPOINT pairs, not both.")
    if benchmark is None:
        raise UserError("TASK=CHECKPOINT pairs need a suite: add --benchmark glue (or a benchmark YAML file).")
    mapping: dict[str, Checkpoint] = {}
    for pair in pairs:
        name, _, spec = pair.partition("=")
        key = name if name in benchmark.tasks else find_task_key(name, benchmark.tasks)
        if key is None:
            raise UserError(f"'{name}' in {pair} is not a task of {benchmark.name}: {', '.join(benchmark.tasks)}.")
        mapping[key] = resolve_checkpoint(spec)
    paths = [str(Path(c.spec).resolve()) for c in mapping.values() if c.path is not None]
    common = os.path.commonpath(paths) if len(paths) == len(mapping) else ""
    label = os.path.relpath(common) if common and common != os.sep else "models"
    return Subject(checkpoint_slug(label) if common else "models", label, mapping, benchmark)


# ---- results files ---------------------------------------------------------------------------------------------


def results_document(scored: Scored, started: float) -> dict[str, Any]:
    """lm-evaluation-harness's results layout; its tools (make_table, ...) read it, metric keys are 'name,none'."""
    from finetune import __version__
    from finetune.eval.results_files import git_hash
    from finetune.outputs.files import library_versions

    benchmark, results = scored.subject.benchmark, scored.results
    specs = benchmark.tasks
    document: dict[str, Any] = {
        "results": {r.key: {"alias": r.key, **{f"{name},none": value for name, value in r.metrics.items()},
                            **{f"{name}_stderr,none": value for name, value in r.stderr.items()}}
                    for r in results},
        "configs": {r.key: {
            "task": r.key, "benchmark": benchmark.name, "output_type": r.settings["task"],
            "dataset_path": specs[r.task_key].dataset or specs[r.task_key].validation_file or r.settings["source"],
            "dataset_name": specs[r.task_key].config, "source": r.settings["source"], "validation_split": r.split,
            "metric_list": [{"metric": name, "higher_is_better": higher_is_better(name)} for name in r.metrics],
            "checkpoint": r.checkpoint.spec, "fingerprint": r.fingerprint, "samples": str(r.predictions),
            "runtime_seconds": r.runtime, "examples_per_second": r.examples_per_second,
            "settings": {k: v for k, v in r.settings.items() if k not in ("split", "source")},
        } for r in results},
        "versions": {r.key: f"finetune-{__version__}" for r in results},
        "n-shot": {r.key: r.settings.get("few_shot", 0) for r in results},
        "higher_is_better": {r.key: {name: higher_is_better(name) for name in r.metrics} for r in results},
        "n-samples": {r.key: {"original": r.n_original, "effective": r.n} for r in results},
    }
    if benchmark.is_suite:
        document["groups"] = {benchmark.name: {"alias": benchmark.name, f"{benchmark.score_name},none": scored.score}}
        document["group_subtasks"] = {benchmark.name: [r.key for r in results]}
        document["task_scores"] = scored.task_scores
        document["not_evaluated"] = scored.missing
    first = results[0].settings if results else {}
    checkpoints = {key: checkpoint.spec for key, checkpoint in scored.subject.checkpoints.items()}
    document["config"] = {
        "model": "finetune", "model_args": f"pretrained={scored.subject.label}", "model_name": scored.subject.label,
        "benchmark": benchmark.name,
        "checkpoints": checkpoints, "batch_size": first.get("batch_size"), "device": first.get("device"),
        "limit": None if all(r.n == r.n_original for r in results) else max(r.n for r in results),
        **{k: v for k, v in first.items() if k not in ("split", "source", "batch_size", "device", "label_names")},
    }
    versions = library_versions()
    document.update(git_hash=git_hash(), task_hashes={r.key: r.task_hash for r in results},
                    library_versions=versions, transformers_version=versions.get("transformers"),
                    model_name=scored.subject.label, model_name_sanitized=scored.subject.name,
                    date=started, total_evaluation_time_seconds=str(round(time.time() - started, 3)))
    return document


def _score(subject: Subject, results: list[SplitResult]) -> Scored:
    scored = Scored(subject, results)
    benchmark = subject.benchmark
    for key, spec in benchmark.tasks.items():
        mine = [r for r in results if r.task_key == key]
        if not mine:
            scored.missing.append(key)
            continue
        if benchmark.is_suite or len(benchmark.tasks) == 1:
            metrics = spec.metrics or [mine[0].main_metric]
            scored.task_scores[key] = benchmark.scale * task_score([r.metrics for r in mine], metrics)
    if benchmark.is_suite:
        scored.score = suite_score(scored.task_scores, list(benchmark.tasks))
    return scored


# ---- the command ---------------------------------------------------------------------------------------------


@dataclass
class Report:
    scored: list[Scored]
    text: str
    files: list[Path]


def run_evaluation(specs: list[str], *, benchmark: str | None = None, dataset: str | None = None,
                   split: str | None = None, limit: int | None = None, batch_size: int = 32,
                   data_dir: str | None = None, output_dir: Path = Path("results"), all_checkpoints: bool = False,
                   overrides: list[str] | None = None, bootstrap_iters: int = 1000,
                   echo: Callable[[str], None] = print) -> Report:
    if benchmark and dataset:
        raise UserError("Give --benchmark or --dataset, not both.")
    chosen = dataset_benchmark(dataset, split) if dataset else resolve_benchmark(benchmark) if benchmark else None
    subjects = _plan(list(specs), chosen, all_checkpoints)
    output_dir = Path(output_dir)
    scored_all: list[Scored] = []
    files: list[Path] = []
    for subject in subjects:
        started = time.time()
        stamp = date_id()
        model_dir = output_dir / subject.name
        bench = subject.benchmark
        results: list[SplitResult] = []
        for key, spec in bench.tasks.items():
            checkpoint = subject.checkpoints.get(key)
            if checkpoint is None:
                continue
            echo(f"evaluating {checkpoint.spec} on {bench.name if len(bench.tasks) == 1 else f'{bench.name}/{key}'}")
            results += evaluate_task(checkpoint, key, spec, model_dir, stamp, batch_size=batch_size, limit=limit,
                                     split=None if dataset else split, data_dir=data_dir, overrides=overrides,
                                     bootstrap_iters=bootstrap_iters)
        scored = _score(subject, results)
        scored.path = results_path(model_dir, stamp)
        from finetune.outputs.files import write_json_atomic

        write_json_atomic(scored.path, results_document(scored, started))
        files += [scored.path, *(result.predictions for result in results)]
        scored_all.append(scored)
    text, tables = _summaries(scored_all, output_dir, all_checkpoints)
    return Report(scored_all, text, files + tables)


def _summaries(scored_all: list[Scored], output_dir: Path, all_checkpoints: bool) -> tuple[str, list[Path]]:
    parts: list[str] = []
    files: list[Path] = []
    benchmark = scored_all[0].subject.benchmark
    if benchmark.is_suite:
        for scored in scored_all:
            parts.append(_suite_table(scored))
    main = scored_all[0].main
    rows = [scored.row() for scored in scored_all]
    if all_checkpoints:
        for run in dict.fromkeys(scored.subject.run or "" for scored in scored_all):
            mine = [(s.subject.checkpoints[next(iter(s.subject.checkpoints))].step or 0, row)
                    for s, row in zip(scored_all, rows) if s.subject.run == run]
            steps = [step for step, _ in mine]
            metrics = [m for m in metric_columns([row for _, row in mine], [main]) if m != "model"]
            table = [[step, *(row.get(m) for m in metrics)] for step, row in mine]
            stem = output_dir / checkpoint_slug(run) / f"{benchmark.slug}-steps"
            files += write_tables(stem, ["step", *metrics], table, f"{run} on {benchmark.name}, by step")
            series = {m: [row.get(m) for _, row in mine] for m in metrics if m not in ("n", "examples/s")}
            files.append(plot_by_step(stem.with_suffix(".png"), steps, series, f"{run}: {benchmark.name}"))
            parts.append(f"{run} on {benchmark.name}, by step:\n" + markdown_table(["step", *metrics], table))
        return "\n".join(parts), files
    if not benchmark.is_suite or len(scored_all) > 1:
        headers, table = leaderboard(rows, main, ["model"])
        parts.append(markdown_table(headers, table))
        if len(scored_all) > 1:
            files += write_tables(output_dir / f"leaderboard-{benchmark.slug}", headers, table,
                                  f"Leaderboard: {benchmark.name} (ranked by {main})")
    return "\n".join(parts), files


def _suite_table(scored: Scored) -> str:
    benchmark = scored.subject.benchmark
    metrics = metric_columns([r.metrics for r in scored.results],
                             [m for spec in benchmark.tasks.values() for m in (spec.metrics or [])])
    rows, seen = [], set()
    for r in scored.results:
        score = scored.task_scores.get(r.task_key) if r.task_key not in seen else None
        seen.add(r.task_key)
        rows.append([r.key, r.checkpoint.spec, r.n, *(r.metrics.get(m) for m in metrics), score])
    rows += [[key, "(not evaluated)", None, *([None] * len(metrics)), None] for key in scored.missing]
    table = markdown_table(["task", "checkpoint", "n", *metrics, f"score (x{benchmark.scale:g})"], rows)
    name = benchmark.score_name
    if scored.score is None:
        summary = (f"{name}: n/a (a score needs all {len(benchmark.tasks)} tasks; not evaluated: "
                   f"{', '.join(scored.missing)})")
    else:
        summary = f"{name}: {scored.score:.2f}"
    return f"{scored.subject.label} on {benchmark.name}:\n{table}{summary}\n"
