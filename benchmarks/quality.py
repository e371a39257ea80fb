"""Results quality: what finetune's default recipe reaches against the baselines a user would otherwise run.

    python benchmarks/quality.py                       # SST-2 at 512 and 4,000 examples, one seed (~25 min, 2 cores)
    python benchmarks/quality.py --tasks sst2,rte,mrpc,cola,stsb --seeds 42,43,44   # the full protocol (hours)
    python benchmarks/quality.py --quick               # SST-2 at 512 examples only (~5 min)

Model all-MiniLM-L6-v2 (22M parameters), GLUE dev sets in full, the first N training examples. Variants, each run in
a fresh process, interleaved (the order rotates from one task/budget/seed to the next):

- finetune: `finetune classify` with its defaults (learning rate by model size, 10% warm-up; batch size and epochs by
  training-set size: batch 8 and 6 epochs at 512 examples, batch 32 and 3 epochs from 1,600);
- finetune (old defaults): the same with the defaults before the size-based policy (learning rate 2e-5, no warm-up);
- Trainer defaults: a plain transformers Trainer with transformers' own defaults (learning rate 5e-5, batch 8,
  3 epochs, no warm-up, linear decay), dynamic padding (its default collator), max_length 128;
- Trainer, equal time: the same, stopped when it has trained as long as finetune did (same task, budget, seed):
  the comparison at equal wall-clock;
- run_glue: transformers' run_glue.py with its README's settings (batch 32, learning rate 2e-5, 3 epochs, padding
  to max_seq_length 128); slow (padding), so only with --variants ...,run_glue and at budgets up to --run-glue-max.

The equal-data Trainer runs at budgets up to --trainer-max (CPU time); at larger budgets the Trainer is compared at
equal wall-clock only.

Metric: the task's official GLUE metric on the full dev set after training (finetune: the best epoch's checkpoint
is reloaded, as a user gets it; the Trainer baselines: the last step, as a plain Trainer gives it). Reported: the
mean over seeds, the spread (max - min), and the training time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LoadTracker, append_results, markdown_table, minilm_path, require_data, run_worker, worker_main

VARIANTS = {
    "finetune": "finetune defaults",
    "finetune_old": "finetune old defaults (lr 2e-5, no warm-up)",
    "trainer": "Trainer defaults (lr 5e-5, batch 8), equal data",
    "trainer_time": "Trainer defaults, equal wall-clock",
    "run_glue": "run_glue README settings (lr 2e-5, batch 32, pad 128)",
}
OLD_DEFAULTS = ["train.learning_rate=2e-5", "train.warmup_ratio=0"]


# ---- inside the worker processes -----------------------------------------------------------------------------------


def finetune_worker(task: str, model: str, data_dir: str, train_samples: int, seed: int,
                    overrides: list[str], epochs: float | None = None) -> dict[str, Any]:
    import os

    os.environ["FINETUNE_VERBOSITY"] = "quiet"
    from finetune.config.loading import load_recipe
    from finetune.tasks import complete
    from finetune.training.run import run

    with tempfile.TemporaryDirectory() as output_dir:
        recipe = complete(load_recipe(base={"task": "classification"}, flags={
            "model": {"name": model},
            "data": {"dataset": f"glue/{task}", "data_dir": data_dir, "max_train_samples": train_samples},
            "train": {"seed": seed}, "output_dir": str(Path(output_dir) / "run")}, overrides=overrides))
        result = run(recipe)
        written = load_recipe(result.run_dir / "recipe.yaml")  # the learning rate the run chose
    metrics = result.metrics
    return {"score": metrics[f"eval_{result.main_metric}"], "metric": result.main_metric,
            "train_runtime": metrics["train_runtime"], "steps": metrics["global_step"],
            "learning_rate": written.train.learning_rate}


def trainer_worker(task: str, model: str, data_dir: str, train_samples: int, seed: int, style: str,
                   time_limit: float | None, epochs: float | None = None) -> dict[str, Any]:
    import numpy as np
    from scipy.stats import pearsonr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    from finetune.config.schema import DataSection
    from finetune.data.glue import get_glue_task
    from finetune.data.sources import load_data

    hf_logging.set_verbosity_error()
    glue = get_glue_task(task)
    # Reading the files is not what is compared: finetune's reader gives the same rows as the datasets' glue config.
    data = load_data(DataSection(dataset=f"glue/{task}", data_dir=data_dir, max_train_samples=train_samples))
    tokenizer = AutoTokenizer.from_pretrained(model)
    padding = "max_length" if style == "run_glue" else False

    def preprocess(batch: dict[str, list]) -> dict[str, Any]:
        texts = [batch[column] for column in glue.text_columns]
        encoded = tokenizer(*texts, padding=padding, max_length=128, truncation=True)
        encoded["labels"] = [float(value) for value in batch["label"]] if glue.is_regression else batch["label"]
        return encoded

    columns = data.train.column_names
    train = data.train.map(preprocess, batched=True, remove_columns=columns)
    dev = data.eval["validation"].map(preprocess, batched=True, remove_columns=columns)
    set_seed(seed)
    network = AutoModelForSequenceClassification.from_pretrained(model, num_labels=glue.num_labels)

    class TimeLimit(TrainerCallback):
        started = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if time_limit is not None and time.perf_counter() - self.started >= time_limit:
                control.should_training_stop = True

    options: dict[str, Any] = {}  # transformers' defaults: lr 5e-5, batch 8, 3 epochs, linear, no warm-up
    if style == "run_glue":
        options = {"per_device_train_batch_size": 32, "learning_rate": 2e-5}
    if epochs:
        options["num_train_epochs"] = epochs
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(output_dir=output_dir, seed=seed, eval_strategy="no", save_strategy="no",
                                 report_to="none", disable_tqdm=True, logging_steps=50, **options)
        trainer = Trainer(model=network, args=args, train_dataset=train, processing_class=tokenizer,
                          data_collator=default_data_collator if style == "run_glue" else None,
                          callbacks=[TimeLimit()])
        trained = trainer.train().metrics
        output = trainer.predict(dev)
    references = output.label_ids
    if glue.is_regression:
        predictions = output.predictions.reshape(-1)
        score = float(pearsonr(predictions, references)[0])
    else:
        predictions = np.argmax(output.predictions, axis=-1)
        score = float({"accuracy": accuracy_score, "f1": f1_score,
                       "matthews_correlation": matthews_corrcoef}[glue.main_metric](references, predictions))
    return {"score": score, "metric": glue.main_metric, "train_runtime": trained["train_runtime"],
            "steps": trainer.state.global_step, "learning_rate": args.learning_rate}


# ---- the driver ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="sst2", help="comma-separated GLUE tasks [sst2]")
    parser.add_argument("--budgets", default="512,4000", help="training examples, comma-separated [512,4000]")
    parser.add_argument("--seeds", default="42", help="comma-separated seeds [42]")
    parser.add_argument("--variants", default="finetune,finetune_old,trainer,trainer_time",
                        help="subset of " + ",".join(VARIANTS) + " [all but run_glue]")
    parser.add_argument("--run-glue-max", type=int, default=512, help="largest budget run_glue runs at [512]")
    parser.add_argument("--trainer-max", type=int, default=512,
                        help="largest budget the equal-data Trainer runs at (2.4x slower than finetune per example "
                             "on CPU, benchmarks/train_throughput.py) [512]")
    parser.add_argument("--epochs", type=float, help="train every variant this many epochs [each one's default: 3]")
    parser.add_argument("--quick", action="store_true", help="SST-2 at 512 examples only")
    options = parser.parse_args()
    if options.quick:
        options.budgets = "512"
    data_dir = str(require_data("glue", "SST-2", "train.tsv").parents[2])
    model = minilm_path()
    tasks = [name.strip() for name in options.tasks.split(",") if name.strip()]
    budgets = [int(value) for value in options.budgets.split(",")]
    seeds = [int(value) for value in options.seeds.split(",")]
    variants = [name.strip() for name in options.variants.split(",") if name.strip()]
    results: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    load = LoadTracker()
    rotation = 0
    for task in tasks:
        for budget in budgets:
            for seed in seeds:
                # finetune first when the equal-time Trainer needs its time; otherwise the order rotates.
                order = variants[rotation % len(variants):] + variants[:rotation % len(variants)]
                rotation += 1
                if "trainer_time" in order:
                    order.remove("trainer_time")
                    order.append("trainer_time")
                    if "finetune" in order:
                        order.remove("finetune")
                        order.insert(0, "finetune")
                finetune_time = None
                trainer_result = None  # the equal-data Trainer run of this task, budget and seed
                for name in order:
                    if ((name == "run_glue" and budget > options.run_glue_max)
                            or (name == "trainer" and budget > options.trainer_max)):
                        continue
                    if name == "trainer_time" and finetune_time is None:
                        continue
                    if (name == "trainer_time" and trainer_result is not None
                            and trainer_result["train_runtime"] <= finetune_time):
                        # The equal-data run finished within finetune's time: stopped at that time it would be the
                        # same run (same seed, same steps), so it is not trained twice.
                        results.setdefault((task, budget, name), []).append(trainer_result)
                        print(f"{task} {budget} seed {seed} {name}: the equal-data run (finished in "
                              f"{trainer_result['train_runtime']:.0f} s <= {finetune_time:.0f} s)", flush=True)
                        continue
                    config = {"task": task, "model": model, "data_dir": data_dir, "train_samples": budget,
                              "seed": seed, "epochs": options.epochs}
                    load.sample()
                    try:
                        if name.startswith("finetune"):
                            overrides = OLD_DEFAULTS if name == "finetune_old" else []
                            if options.epochs:
                                overrides = [*overrides, f"train.epochs={options.epochs}"]
                            measured = run_worker(__file__, "finetune", {**config, "overrides": overrides})
                        else:
                            measured = run_worker(__file__, "trainer", {
                                **config, "style": "run_glue" if name == "run_glue" else "trainer",
                                "time_limit": finetune_time if name == "trainer_time" else None})
                    except RuntimeError as error:  # one failed run must not lose the others' results
                        print(f"{task} {budget} seed {seed} {name}: FAILED {str(error)[-2000:]}", flush=True)
                        continue
                    result = {**measured.result, "wall_s": measured.seconds}
                    if name == "finetune":
                        finetune_time = result["train_runtime"]
                    if name == "trainer":
                        trainer_result = result
                    results.setdefault((task, budget, name), []).append(result)
                    print(f"{task} {budget} seed {seed} {name}: {result['metric']} {result['score']:.4f}, "
                          f"{result['steps']} steps, lr {result['learning_rate']:g}, "
                          f"{result['train_runtime']:.0f} s training, {measured.seconds:.0f} s wall", flush=True)

    rows = []
    for (task, budget, name), runs in results.items():
        scores = [run["score"] for run in runs]
        rows.append([task, budget, VARIANTS[name], runs[0]["metric"], f"{statistics.mean(scores):.4f}",
                     f"{max(scores) - min(scores):.4f}" if len(scores) > 1 else "-", len(scores),
                     f"{runs[0]['learning_rate']:g}", runs[0]["steps"],
                     f"{statistics.mean(run['train_runtime'] for run in runs):.0f}"])
    table = markdown_table(["task", "train examples", "variant", "metric", "dev score (mean)", "spread", "seeds",
                            "learning rate", "steps", "training s"], rows)
    notes = [f"model all-MiniLM-L6-v2; GLUE {', '.join(tasks)}: the first N training examples, the full dev set; "
             f"seeds {', '.join(map(str, seeds))}; spread = max - min over seeds; "
             + (f"{options.epochs:g} epoch(s) for every variant" if options.epochs else "each variant's default "
                "epochs (the Trainer's 3; finetune's 3, or 6 under 1,600 examples)")
             + f"; torch threads per run: {os.environ.get('OMP_NUM_THREADS', 'torch default')}",
             "finetune: the best epoch's checkpoint (as `finetune classify` keeps it); Trainer baselines: the last "
             "step; equal wall-clock: the Trainer stopped after finetune's training time (same task, budget, seed); "
             "where the equal-data Trainer run finished within that time, it is also the equal wall-clock result",
             load.note()]
    append_results("Results quality: GLUE, all-MiniLM-L6-v2, default settings", table, notes)


if __name__ == "__main__":
    if not worker_main({"finetune": finetune_worker, "trainer": trainer_worker}):
        main()
