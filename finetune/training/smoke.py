"""`finetune smoke`: prove the install works end to end with no network, in the spirit of `accelerate test`.

For every registered task family that declares a smoke case (TaskFamily.smoke): write the family's tiny dataset,
build a tiny random model of the family offline (TaskFamily.tiny_model), then go through the same code path as the
family's command: train, evaluate, save, reload and predict. One line per family. It fails (exit 1) when a model
does not learn its toy task, which is easy enough that a working pipeline always does.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from finetune.console import VERBOSITY_VARIABLE, verbosity
from finetune.errors import UserError
from finetune.tasks import families, get_family
from finetune.tasks.base import TaskFamily


@contextmanager
def _quiet_single_threaded() -> Iterator[None]:
    """The smoke lines only, unless --verbose; one torch thread: tiny models gain nothing from intra-op threads,
    and on a small shared machine more threads than free cores make every step several times slower."""
    import torch

    threads, level = torch.get_num_threads(), os.environ.get(VERBOSITY_VARIABLE)
    torch.set_num_threads(1)
    if verbosity() != "verbose":
        os.environ[VERBOSITY_VARIABLE] = "quiet"
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if level is None:
            os.environ.pop(VERBOSITY_VARIABLE, None)
        else:
            os.environ[VERBOSITY_VARIABLE] = level


def _training_losses(run_dir: Path) -> list[float]:
    state = json.loads((run_dir / "trainer_state.json").read_text(encoding="utf-8"))
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def _short(text: str, width: int = 28) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def smoke_family(family: TaskFamily, folder: Path) -> tuple[bool, str]:
    """Train -> evaluate -> save -> reload -> predict one family's toy task in `folder`: (passed, the line)."""
    from finetune.config.loading import load_recipe
    from finetune.tasks.base import PredictRequest
    from finetune.tasks.predict import predict
    from finetune.training.run import run

    assert family.smoke is not None and family.tiny_model is not None
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    case = family.smoke(folder)
    model_dir = family.tiny_model(folder / "tiny-model", case.texts)
    recipe = load_recipe(base={"task": family.name}, flags={
        **case.settings, "model": {"name": str(model_dir)}, "output_dir": str(folder / "run")})
    result = run(recipe, overwrite=True)
    _, records = predict(result.run_dir, PredictRequest(case.inputs, batch_size=8))
    losses = _training_losses(result.run_dir)
    problem = case.check(result.metrics, records)
    if problem is None and not (len(losses) >= 2 and losses[-1] < losses[0]):
        problem = f"training loss did not fall ({losses})"
    value = result.metrics.get(case.metric)
    shown = f"{case.metric.removeprefix('eval_')} {value:.3f}" if isinstance(value, (int, float)) else case.metric
    record = records[0]
    example = record.get("label") or record.get("output", "")
    line = (f"{family.name:<20} {'ok' if problem is None else 'FAILED':<6} {shown:<20} "
            f"loss {losses[0]:.2f} -> {losses[-1]:.2f}  {time.perf_counter() - started:4.1f} s  "
            f"predict {_short(case.inputs[0][0])!r} -> {_short(str(example))!r}")
    if problem is not None:
        line += f"\n    {problem}"
    return problem is None, line


def smoke_families(task: str | None) -> list[TaskFamily]:
    if task is not None:
        family = get_family(task)
        if family.smoke is None or family.tiny_model is None:
            raise UserError(f"Task '{task}' declares no smoke case (TaskFamily.smoke and tiny_model).")
        return [family]
    return [family for family in families() if family.smoke is not None and family.tiny_model is not None]


def run_smoke(output_dir: Path | None = None, task: str | None = None,
              echo: Callable[[str], None] = print) -> int:
    """Returns the exit code: 0 when every family's tiny model learned its task and predictions reload, else 1.
    The temporary folder is removed afterwards; an `output_dir` is kept."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the Hub
    chosen = smoke_families(task)
    work = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="finetune-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    echo("smoke: per task family, a tiny random model trained offline: train -> evaluate -> save -> reload -> "
         "predict" + (f" (kept in {work})" if output_dir else ""))
    started, failed = time.perf_counter(), []
    try:
        from finetune.training.trainer import configure_library_logging

        with _quiet_single_threaded():
            configure_library_logging()
            for family in chosen:
                passed, line = smoke_family(family, work / family.name)
                echo(line)
                if not passed:
                    failed.append(family.name)
    finally:
        if output_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if failed:
        print(f"smoke FAILED for {', '.join(failed)}.", file=sys.stderr)
        return 1
    echo(f"smoke passed in {time.perf_counter() - started:.0f} s.")
    return 0



def write_tiny_model(task: str, output_dir: Path, train_files: list[Path], vocab_size: int | None = None,
                     seed: int = 0) -> tuple[Path, str]:
    """A small random model of `task`'s family in `output_dir`, its tokenizer trained on the texts of
    `train_files` (or, without files, on the family's smoke data): (folder, what was built)."""
    from finetune.data.texts import texts_from_files

    family = smoke_families(task)[0]
    assert family.smoke is not None and family.tiny_model is not None
    if output_dir.exists() and any(output_dir.iterdir()):
        raise UserError(f"{output_dir} exists and is not empty: choose a new --output-dir.")
    if train_files:
        texts, source = texts_from_files(train_files), ", ".join(str(path) for path in train_files)
    else:
        with tempfile.TemporaryDirectory(prefix="finetune-tiny-") as folder:
            texts, source = family.smoke(Path(folder)).texts, f"finetune smoke's {family.name} data"
    options = {"seed": seed} | ({"vocab_size": vocab_size} if vocab_size else {})
    family.tiny_model(output_dir, texts, **options)
    config = json.loads((output_dir / "config.json").read_text(encoding="utf-8"))
    architecture = (config.get("architectures") or [config.get("model_type", "model")])[0]
    return output_dir, (f"tiny random {architecture} ({config.get('vocab_size')}-token vocabulary trained on "
                        f"{len(texts)} texts from {source})")
