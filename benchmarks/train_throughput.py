"""Training throughput on SST-2: `finetune classify` against the baselines users would otherwise run.

    python benchmarks/train_throughput.py           # 2,560 examples (80 steps), 3 interleaved rounds (~15 min, 2 cores)
    python benchmarks/train_throughput.py --quick   # 1,280 examples (40 steps), 1 round (~3 min)

Three variants, same model (all-MiniLM-L6-v2), same examples (the first N of SST-2 train), same number of steps,
learning rate, batch size and seed, each in a fresh process. Each round uses another seed (42, 43, ...) for all
variants; the variants' order rotates from round to round:

- run_glue defaults: a plain transformers Trainer fed as transformers' examples/pytorch/text-classification/run_glue.py
  feeds it by default: tokenizer(padding="max_length", max_length=128, truncation=True), default_data_collator,
  random order (train_sampling_strategy="random");
- dynamic padding: the same Trainer, unpadded tokenization, DataCollatorWithPadding (each batch padded to its
  longest example), random order;
- finetune: `finetune.training.run.run(recipe)` (the code path of `finetune classify`) with its defaults, except
  `train.eval_strategy=no`, so that its training time, like the baselines', covers training only.

Reported per variant: training samples/s (the Trainer's own train_samples_per_second, median over rounds), padding
efficiency (real tokens / token positions the model computed during training, counted by a forward pre-hook on
the model), accuracy on the full SST-2 dev set (872) after training (mean over the rounds' seeds: one seed's
accuracy moves by a point with any change in batch composition), evaluation samples/s, and peak memory (RSS of
the process).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    LoadTracker,
    append_results,
    markdown_table,
    median,
    minilm_path,
    require_data,
    run_worker,
    worker_main,
)

VARIANTS = {
    "run_glue": "run_glue defaults (pad to 128, random order)",
    "dynamic": "dynamic padding (random order)",
    "finetune": "finetune classify (defaults)",
}


# ---- inside the worker processes -----------------------------------------------------------------------------------


def count_tokens(model: Any, counts: dict[str, int]) -> None:
    """Count real tokens (attention mask ones) and computed positions of every training forward pass."""

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        if not module.training:
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        counts["computed"] += int(ids.numel())
        counts["real"] += int(mask.sum()) if mask is not None else int(ids.numel())
        counts["batches"] += 1

    model.register_forward_pre_hook(hook, with_kwargs=True)


def read_sst2(path: Path, limit: int | None = None) -> dict[str, list]:
    """The GLUE TSV (header `sentence<TAB>label`), read plainly; no quoting in GLUE text."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        rows = [row for row in reader if row]
    rows = rows[:limit] if limit else rows
    sentence, label = header.index("sentence"), header.index("label")
    return {"sentence": [row[sentence] for row in rows], "label": [int(row[label]) for row in rows]}


def baseline_worker(variant: str, model: str, data_dir: str, train_samples: int, epochs: float, batch_size: int,
                    learning_rate: float, seed: int, max_length: int) -> dict[str, Any]:
    import numpy as np
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    folder = Path(data_dir) / "glue" / "SST-2"
    tokenizer = AutoTokenizer.from_pretrained(model)
    padding = "max_length" if variant == "run_glue" else False

    def preprocess(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch["sentence"], padding=padding, max_length=max_length, truncation=True)

    train = Dataset.from_dict(read_sst2(folder / "train.tsv", train_samples)).map(
        preprocess, batched=True, remove_columns=["sentence"])
    dev = Dataset.from_dict(read_sst2(folder / "dev.tsv")).map(preprocess, batched=True, remove_columns=["sentence"])
    set_seed(seed)
    network = AutoModelForSequenceClassification.from_pretrained(model, num_labels=2)
    counts = {"real": 0, "computed": 0, "batches": 0}
    count_tokens(network, counts)

    def accuracy(prediction: Any) -> dict[str, float]:
        return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}

    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=batch_size, per_device_eval_batch_size=2 * batch_size,
            learning_rate=learning_rate, num_train_epochs=epochs, seed=seed, data_seed=seed,
            train_sampling_strategy="random", eval_strategy="no", save_strategy="no", logging_steps=50,
            report_to="none", disable_tqdm=True)
        collator = default_data_collator if variant == "run_glue" else DataCollatorWithPadding(tokenizer)
        trainer = Trainer(model=network, args=args, train_dataset=train, processing_class=tokenizer,
                          data_collator=collator, compute_metrics=accuracy)
        trained = trainer.train().metrics
        evaluated = trainer.evaluate(dev)
    return {"train_samples_per_second": trained["train_samples_per_second"], "train_runtime": trained["train_runtime"],
            "steps": trainer.state.global_step, "eval_accuracy": evaluated["eval_accuracy"],
            "eval_samples_per_second": evaluated["eval_samples_per_second"], **counts}


def finetune_worker(model: str, data_dir: str, train_samples: int, epochs: float, batch_size: int,
                    learning_rate: float, seed: int, max_length: int) -> dict[str, Any]:
    import os

    os.environ["FINETUNE_VERBOSITY"] = "quiet"
    from finetune.config.loading import load_recipe
    from finetune.tasks.classification import ClassificationTask
    from finetune.training.run import run

    counts = {"real": 0, "computed": 0, "batches": 0}
    load_model = ClassificationTask.load_model

    def counted_load_model(self: ClassificationTask) -> Any:
        network, tokenizer = load_model(self)
        count_tokens(network, counts)
        return network, tokenizer

    ClassificationTask.load_model = counted_load_model  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as output_dir:
        recipe = load_recipe(base={"task": "classification"}, flags={
            "model": {"name": model},
            "data": {"dataset": "glue/sst2", "data_dir": data_dir, "max_train_samples": train_samples,
                     "max_length": max_length},
            "train": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed},
            "output_dir": str(Path(output_dir) / "run"),
        }, overrides=["train.eval_strategy=no"])
        metrics = run(recipe).metrics
    return {"train_samples_per_second": metrics["train_samples_per_second"], "train_runtime": metrics["train_runtime"],
            "steps": metrics["global_step"], "eval_accuracy": metrics["eval_accuracy"],
            "eval_samples_per_second": metrics["eval_samples_per_second"], **counts}


# ---- the driver ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,280 examples, one round (a few minutes)")
    parser.add_argument("--train-samples", type=int, help="first N SST-2 training examples [2560; quick: 1280]")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, help="interleaved rounds, one seed each [3; quick: 1]")
    parser.add_argument("--batch-size", type=int, default=32)
    # Higher than finetune's default (2e-5), the same for every variant: 80 steps then reach ~0.8 dev accuracy, so a
    # loss of quality would show.
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42, help="seed of the first round (then +1 each round)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset of " + ",".join(VARIANTS))
    options = parser.parse_args()
    data_dir = require_data("glue", "SST-2", "train.tsv").parents[2]
    config = {"model": minilm_path(), "data_dir": str(data_dir),
              "train_samples": options.train_samples or (1280 if options.quick else 2560), "epochs": options.epochs,
              "batch_size": options.batch_size, "learning_rate": options.learning_rate, "seed": options.seed,
              "max_length": 128}
    rounds = options.rounds or (1 if options.quick else 3)
    variants = [name.strip() for name in options.variants.split(",") if name.strip()]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    load = LoadTracker()
    for round_index in range(rounds):
        # Rotate the order each round, so slow spells on a shared machine do not always hit the same variant.
        for name in variants[round_index % len(variants):] + variants[:round_index % len(variants)]:
            load.sample()
            started = time.perf_counter()
            seeded = {**config, "seed": config["seed"] + round_index}
            if name == "finetune":
                measured = run_worker(__file__, "finetune", seeded)
            else:
                measured = run_worker(__file__, "baseline", {"variant": name, **seeded})
            result = {**measured.result, "peak_mb": measured.peak_mb, "wall_s": measured.seconds}
            results[name].append(result)
            print(f"round {round_index + 1}/{rounds} (seed {seeded['seed']}) {name}: "
                  f"{result['train_samples_per_second']:.1f} samples/s, accuracy {result['eval_accuracy']:.4f}, "
                  f"{time.perf_counter() - started:.0f} s", flush=True)

    def summary(name: str) -> dict[str, float]:
        runs = results[name]
        first = runs[0]
        return {"speed": median([run["train_samples_per_second"] for run in runs]),
                "efficiency": sum(run["real"] for run in runs) / sum(run["computed"] for run in runs),
                "accuracy": sum(run["eval_accuracy"] for run in runs) / len(runs),
                "accuracies": [run["eval_accuracy"] for run in runs],
                "eval_speed": median([run["eval_samples_per_second"] for run in runs]),
                "peak_mb": max(run["peak_mb"] for run in runs), "steps": first["steps"],
                "spread": (max(run["train_samples_per_second"] for run in runs)
                           / min(run["train_samples_per_second"] for run in runs))}

    summaries = {name: summary(name) for name in variants}
    reference = summaries.get("finetune")
    rows = []
    for name in variants:
        row = summaries[name]
        rows.append([VARIANTS[name], f"{row['speed']:.1f}",
                     f"{reference['speed'] / row['speed']:.2f}x" if reference else "",
                     f"{row['efficiency']:.3f}", f"{row['accuracy']:.4f}", f"{row['eval_speed']:.0f}",
                     f"{row['peak_mb']:.0f}", row["steps"]])
    table = markdown_table(["variant", "train samples/s", "finetune is", "padding efficiency", "dev accuracy",
                            "eval samples/s", "peak MB", "steps"], rows)
    seeds = ", ".join(str(config["seed"] + index) for index in range(rounds))
    notes = [f"model all-MiniLM-L6-v2; SST-2: first {config['train_samples']} training examples, {config['epochs']:g} "
             f"epoch(s), batch {config['batch_size']}, learning rate {config['learning_rate']:g}, max_length 128; "
             f"accuracy on the full dev set (872) after training, mean over seeds {seeds}",
             f"{rounds} interleaved round(s), median samples/s; largest/smallest samples/s across rounds: "
             + ", ".join(f"{name} {summaries[name]['spread']:.2f}" for name in variants),
             "dev accuracy per seed: " + "; ".join(
                 f"{name} " + ", ".join(f"{value:.4f}" for value in summaries[name]["accuracies"])
                 for name in variants),
             "padding efficiency: real tokens / positions computed in the training forward passes",
             load.note()]
    if reference:
        goals = []
        if "run_glue" in summaries:
            goals.append(f"{reference['speed'] / summaries['run_glue']['speed']:.2f}x run_glue defaults (goal >= 4)")
        if "dynamic" in summaries:
            goals.append(f"{reference['speed'] / summaries['dynamic']['speed']:.2f}x dynamic padding (goal >= 1.3)")
        goals.append(f"padding efficiency {reference['efficiency']:.3f} (goal >= 0.9)")
        if "run_glue" in summaries:
            delta = reference["accuracy"] - summaries["run_glue"]["accuracy"]
            goals.append(f"mean accuracy {delta:+.4f} against run_glue defaults (goal >= 0; one dev example is "
                         f"0.0011)")
        notes.append("goals: " + "; ".join(goals))
    append_results("Training throughput: SST-2, all-MiniLM-L6-v2" + (" (quick)" if options.quick else ""),
                   table, notes)


if __name__ == "__main__":
    if not worker_main({"baseline": baseline_worker, "finetune": finetune_worker}):
        main()
