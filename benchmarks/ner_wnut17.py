"""Token classification quality and speed on WNUT-17: `finetune ner` against a plain Trainer written run_ner.py-style.

    python benchmarks/ner_wnut17.py           # all 3,394 training sentences, 1 epoch, 2 interleaved rounds
    python benchmarks/ner_wnut17.py --quick   # the first 1,500 training sentences, 1 round (~3 min on 2 cores)

Two variants, same model (all-MiniLM-L6-v2), same sentences, epochs, learning rate, batch size and seed, each in a
fresh process:

- run_ner.py: a plain transformers Trainer fed as transformers' examples/pytorch/token-classification/run_ner.py
  feeds it by default: the label list sorted, tokenizer(words, is_split_into_words=True, truncation=True,
  max_length=128) without padding (run_ner's `pad_to_max_length` is off by default), the first sub-token of a word
  labelled and the others -100 (`label_all_tokens` off), DataCollatorForTokenClassification (each batch padded to
  its longest example), random order; scored with seqeval's default (conlleval) matching, as run_ner.py's
  `evaluate.load("seqeval")` does;
- finetune: `finetune.training.run.run(recipe)` (the code path of `finetune ner`) with its defaults (length-grouped
  batches), except `train.eval_strategy=no`, so that its training time, like the baseline's, covers training only.

Reported per variant: dev entity F1 (overall, micro over entities, on all 1,009 dev sentences after training; mean
over rounds), token accuracy, training samples/s (the Trainer's own train_samples_per_second, median over rounds),
wall time of the whole process (data, model, training, evaluation) and peak memory. For scale: BERT-base reaches
0.47-0.49 entity F1 on the WNUT-17 *test* set in the literature (e.g. Nguyen et al., 2020, BERTweet, Table 3: BERT-base
0.479 on test); this is a 22M-parameter uncased sentence-embedding model trained for one epoch, scored on dev.
"""

from __future__ import annotations

import argparse
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

VARIANTS = {"run_ner": "run_ner.py-style Trainer (dynamic padding, random order)",
            "finetune": "finetune ner (defaults)"}


def read_conll(path: Path, limit: int | None = None) -> dict[str, list]:
    """token TAB tag a line, a whitespace-only line between sentences (how the HF wnut_17 loader reads the files)."""
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    labels: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip():
            if words:
                tokens.append(words)
                tags.append(labels)
            words, labels = [], []
            continue
        word, tag = line.split("\t")
        words.append(word)
        labels.append(tag.strip())
    return {"tokens": tokens[:limit] if limit else tokens, "ner_tags": tags[:limit] if limit else tags}


def baseline_worker(model: str, folder: str, train_samples: int | None, epochs: float, batch_size: int,
                    learning_rate: float, seed: int, max_length: int) -> dict[str, Any]:
    import numpy as np
    from datasets import Dataset
    from seqeval.metrics import accuracy_score, f1_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    train_raw = read_conll(Path(folder) / "wnut17train.conll", train_samples)
    dev_raw = read_conll(Path(folder) / "emerging.dev.conll")
    label_list = sorted({tag for tags in train_raw["ner_tags"] + dev_raw["ner_tags"] for tag in tags})
    label_to_id = {label: index for index, label in enumerate(label_list)}
    tokenizer = AutoTokenizer.from_pretrained(model)

    def tokenize_and_align_labels(examples: dict[str, list]) -> dict[str, list]:  # run_ner.py's, label_all_tokens off
        tokenized = tokenizer(examples["tokens"], padding=False, truncation=True, max_length=max_length,
                              is_split_into_words=True)
        labels = []
        for index, label in enumerate(examples["ner_tags"]):
            previous, label_ids = None, []
            for word_idx in tokenized.word_ids(batch_index=index):
                if word_idx is None or word_idx == previous:
                    label_ids.append(-100)
                else:
                    label_ids.append(label_to_id[label[word_idx]])
                previous = word_idx
            labels.append(label_ids)
        tokenized["labels"] = labels
        return tokenized

    train = Dataset.from_dict(train_raw).map(tokenize_and_align_labels, batched=True, remove_columns=["tokens",
                                                                                                     "ner_tags"])
    dev = Dataset.from_dict(dev_raw).map(tokenize_and_align_labels, batched=True, remove_columns=["tokens",
                                                                                                 "ner_tags"])
    set_seed(seed)
    network = AutoModelForTokenClassification.from_pretrained(
        model, num_labels=len(label_list), id2label=dict(enumerate(label_list)), label2id=label_to_id)

    def compute_metrics(prediction: Any) -> dict[str, float]:
        predicted = np.argmax(prediction.predictions, axis=2)
        true_predictions = [[label_list[p] for p, gold in zip(row, labels) if gold != -100]
                            for row, labels in zip(predicted, prediction.label_ids)]
        true_labels = [[label_list[gold] for gold in labels if gold != -100] for labels in prediction.label_ids]
        return {"f1": f1_score(true_labels, true_predictions), "accuracy": accuracy_score(true_labels,
                                                                                          true_predictions)}

    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=batch_size, per_device_eval_batch_size=2 * batch_size,
            learning_rate=learning_rate, num_train_epochs=epochs, seed=seed, data_seed=seed,
            eval_strategy="no", save_strategy="no", logging_steps=50, report_to="none", disable_tqdm=True)
        trainer = Trainer(model=network, args=args, train_dataset=train, processing_class=tokenizer,
                          data_collator=DataCollatorForTokenClassification(tokenizer), compute_metrics=compute_metrics)
        trained = trainer.train().metrics
        evaluated = trainer.evaluate(dev)
    return {"train_samples_per_second": trained["train_samples_per_second"], "train_runtime": trained["train_runtime"],
            "steps": trainer.state.global_step, "eval_f1": evaluated["eval_f1"],
            "eval_accuracy": evaluated["eval_accuracy"],
            "eval_samples_per_second": evaluated["eval_samples_per_second"]}


def finetune_worker(model: str, folder: str, train_samples: int | None, epochs: float, batch_size: int,
                    learning_rate: float, seed: int, max_length: int) -> dict[str, Any]:
    import os

    os.environ["FINETUNE_VERBOSITY"] = "quiet"
    from finetune.config.loading import load_recipe
    from finetune.training.run import run

    with tempfile.TemporaryDirectory() as output_dir:
        recipe = load_recipe(base={"task": "token_classification"}, flags={
            "model": {"name": model},
            "data": {"train_file": str(Path(folder) / "wnut17train.conll"),
                     "validation_file": str(Path(folder) / "emerging.dev.conll"),
                     "max_train_samples": train_samples, "max_length": max_length},
            "train": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed},
            "output_dir": str(Path(output_dir) / "run"),
        }, overrides=["train.eval_strategy=no"])
        metrics = run(recipe).metrics
    return {"train_samples_per_second": metrics["train_samples_per_second"], "train_runtime": metrics["train_runtime"],
            "steps": metrics["global_step"], "eval_f1": metrics["eval_f1"], "eval_accuracy": metrics["eval_accuracy"],
            "eval_samples_per_second": metrics["eval_samples_per_second"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,500 training sentences, one round (a few minutes)")
    parser.add_argument("--train-samples", type=int, help="first N WNUT-17 training sentences [all 3394; quick 1500]")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, help="interleaved rounds, one seed each [2; quick: 1]")
    parser.add_argument("--batch-size", type=int, default=16)
    # Higher than BERT-base's usual 5e-5, the same for both variants: one epoch of a small model then learns the
    # frequent entity types, so a loss of quality would show.
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42, help="seed of the first round (then +1 each round)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset of " + ",".join(VARIANTS))
    options = parser.parse_args()
    folder = require_data("ner", "wnut17", "wnut17train.conll").parent
    config = {"model": minilm_path(), "folder": str(folder),
              "train_samples": options.train_samples or (1500 if options.quick else None), "epochs": options.epochs,
              "batch_size": options.batch_size, "learning_rate": options.learning_rate, "seed": options.seed,
              "max_length": 128}
    rounds = options.rounds or (1 if options.quick else 2)
    variants = [name.strip() for name in options.variants.split(",") if name.strip()]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    load = LoadTracker()
    for round_index in range(rounds):
        shift = round_index % len(variants)
        for name in variants[shift:] + variants[:shift]:  # alternate which goes first
            load.sample()
            started = time.perf_counter()
            seeded = {**config, "seed": config["seed"] + round_index}
            measured = run_worker(__file__, "finetune" if name == "finetune" else "baseline", seeded)
            result = {**measured.result, "peak_mb": measured.peak_mb, "wall_s": measured.seconds}
            results[name].append(result)
            print(f"round {round_index + 1}/{rounds} (seed {seeded['seed']}) {name}: f1 {result['eval_f1']:.4f}, "
                  f"{result['train_samples_per_second']:.1f} samples/s, {time.perf_counter() - started:.0f} s",
                  flush=True)

    def summary(name: str) -> dict[str, Any]:
        runs = results[name]
        return {"f1": sum(run["eval_f1"] for run in runs) / len(runs), "f1s": [run["eval_f1"] for run in runs],
                "accuracy": sum(run["eval_accuracy"] for run in runs) / len(runs),
                "speed": median([run["train_samples_per_second"] for run in runs]),
                "wall": median([run["wall_s"] for run in runs]),
                "eval_speed": median([run["eval_samples_per_second"] for run in runs]),
                "peak_mb": max(run["peak_mb"] for run in runs), "steps": runs[0]["steps"]}

    summaries = {name: summary(name) for name in variants}
    reference = summaries.get("finetune")
    rows = [[VARIANTS[name], f"{row['f1']:.4f}", f"{row['accuracy']:.4f}", f"{row['speed']:.1f}",
             f"{reference['speed'] / row['speed']:.2f}x" if reference else "", f"{row['wall']:.0f}",
             f"{row['eval_speed']:.0f}", f"{row['peak_mb']:.0f}", row["steps"]] for name, row in summaries.items()]
    table = markdown_table(["variant", "dev entity F1", "token accuracy", "train samples/s", "finetune is",
                            "wall s (process)", "eval samples/s", "peak MB", "steps"], rows)
    seeds = ", ".join(str(config["seed"] + index) for index in range(rounds))
    sentences = config["train_samples"] or 3394
    baseline = summaries.get("run_ner")
    notes = [f"model all-MiniLM-L6-v2 (uncased, 22M parameters); WNUT-17: first {sentences} training sentences, "
             f"{config['epochs']:g} epoch(s), batch {config['batch_size']}, learning rate {config['learning_rate']:g}, "
             f"max_length 128, first sub-token labelled; entity F1 by seqeval (default conlleval matching) on all "
             f"1,009 dev sentences after training, mean over seeds {seeds}",
             "dev F1 per seed: " + "; ".join(f"{name} " + ", ".join(f"{value:.4f}" for value in summaries[name]['f1s'])
                                             for name in variants),
             "baseline padding: DataCollatorForTokenClassification (run_ner.py's default, pad_to_max_length off)",
             "for scale: BERT-base scores 0.47-0.49 entity F1 on the WNUT-17 test set in the literature (BERTweet "
             "paper, Nguyen et al. 2020: 0.479); a larger cased model trained longer is needed to approach it",
             load.note()]
    if reference and baseline:
        notes.append(f"goals: finetune {reference['speed'] / baseline['speed']:.2f}x the baseline's training "
                     f"samples/s (goal > 1); dev F1 {reference['f1'] - baseline['f1']:+.4f} against it (goal >= 0 "
                     f"within seed noise)")
    append_results("Token classification: WNUT-17, all-MiniLM-L6-v2" + (" (quick)" if options.quick else ""),
                   table, notes)


if __name__ == "__main__":
    if not worker_main({"baseline": baseline_worker, "finetune": finetune_worker}):
        main()
