"""Preprocessing cache: the data preparation of a second, identical run against the first.

    python benchmarks/preprocessing_cache.py            # SST-2 from the GLUE TSVs, and the same rows as a jsonl file
    python benchmarks/preprocessing_cache.py --quick    # the GLUE TSVs only

Data preparation is what `finetune classify` does between loading the tokenizer and loading the model: read the
data (load_data), check columns and labels (task.setup) and tokenize the training and evaluation splits
(task.tokenize); all 67,349 SST-2 training rows and the 872 dev rows, all-MiniLM-L6-v2's tokenizer. Each run is a
fresh process, timed after its imports. The caches start empty (FINETUNE_CACHE_DIR and HF_DATASETS_CACHE point at
a new temporary folder), so the first run is a cold one. Rows:

- first run: nothing cached;
- second run: identical, so it reads the parsed file and the tokenized splits back;
- cache off: FINETUNE_NO_CACHE=1, what every run cost before the cache (datasets' own jsonl cache stays warm);
- max_length changed: the tokenization cache must miss (and the parsed-file cache still hit).

The tokenized training split of every run is hashed: a cached run must give exactly the first run's ids.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
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


def prepare_worker(model: str, flags: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    import hashlib
    import os
    import time

    os.environ.update(env)
    import datasets  # noqa: F401  (imported before the clock starts, as are the others)
    from transformers import AutoTokenizer

    from finetune.config.loading import load_recipe
    from finetune.data.sources import load_data
    from finetune.tasks import get_task

    recipe = load_recipe(base={"task": "classification"}, flags={"model": {"name": model}, **flags})
    tokenizer = AutoTokenizer.from_pretrained(model)
    start = time.perf_counter()
    data = load_data(recipe.data)
    loaded = time.perf_counter()
    task = get_task(recipe)
    task.setup(data)
    checked = time.perf_counter()
    train = task.tokenize(data.train, tokenizer)
    evaluation = {name: task.tokenize(split, tokenizer) for name, split in data.eval.items()}
    tokenized = time.perf_counter()
    content = json.dumps(train[:], sort_keys=True).encode("utf-8")  # the ids themselves, not their layout
    return {"load_s": loaded - start, "setup_s": checked - loaded, "tokenize_s": tokenized - checked,
            "total_s": tokenized - start, "train_rows": len(train), "eval_rows": sum(map(len, evaluation.values())),
            "ids_sha256": hashlib.sha256(content).hexdigest()[:16]}


def write_jsonl(folder: Path, data_dir: Path) -> tuple[Path, Path]:
    """SST-2 train and dev as jsonl files (local files go through datasets.load_dataset, unlike GLUE TSVs)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_throughput import read_sst2

    paths = []
    for split in ("train", "dev"):
        rows = read_sst2(data_dir / "glue" / "SST-2" / f"{split}.tsv")
        path = folder / f"sst2-{split}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for sentence, label in zip(rows["sentence"], rows["label"]):
                handle.write(json.dumps({"sentence": sentence, "label": label}) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the GLUE TSVs")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per row, median [3]")
    options = parser.parse_args()
    data_dir = require_data("glue", "SST-2", "train.tsv").parents[2]
    model = minilm_path()
    load = LoadTracker()
    rows, notes, ratios = [], [], []
    with tempfile.TemporaryDirectory(prefix="finetune-cache-bench-") as scratch:
        scratch_path = Path(scratch)
        sources = {"GLUE SST-2 TSVs (glue/sst2 --data-dir)": {"dataset": "glue/sst2", "data_dir": str(data_dir)}}
        if not options.quick:
            train_file, dev_file = write_jsonl(scratch_path, data_dir)
            sources["the same rows as jsonl files (--train-file)"] = {
                "train_file": str(train_file), "validation_file": str(dev_file), "text_columns": ["sentence"]}
        for index, (source, data_flags) in enumerate(sources.items()):
            cache = scratch_path / f"cache-{index}"
            env = {"FINETUNE_CACHE_DIR": str(cache / "finetune"), "HF_DATASETS_CACHE": str(cache / "datasets")}

            def run(env_extra: dict[str, str] | None = None, max_length: int = 128) -> dict[str, Any]:
                load.sample()
                flags = {"data": {**data_flags, "max_length": max_length}}
                measured = run_worker(__file__, "prepare", {"model": model, "flags": flags,
                                                            "env": {**env, **(env_extra or {})}})
                return {**measured.result, "peak_mb": measured.peak_mb}

            first = run()
            warm = [run() for _ in range(options.repeats)]
            off = [run({"FINETUNE_NO_CACHE": "1"}) for _ in range(options.repeats)]
            changed = run(max_length=64)
            second_total = median([result["total_s"] for result in warm])
            ratios.append(second_total / first["total_s"])
            same = all(result["ids_sha256"] == first["ids_sha256"] for result in warm + off)

            def row(label: str, results: list[dict[str, Any]]) -> list[Any]:
                pick = {key: median([result[key] for result in results])
                        for key in ("load_s", "setup_s", "tokenize_s", "total_s")}
                return [source, label, f"{pick['load_s']:.3f}", f"{pick['setup_s']:.3f}", f"{pick['tokenize_s']:.3f}",
                        f"{pick['total_s']:.3f}", f"{pick['total_s'] / first['total_s']:.1%}",
                        f"{max(result['peak_mb'] for result in results):.0f}"]

            rows += [row("first run (cold caches)", [first]),
                     row(f"second run, identical (median of {options.repeats})", warm),
                     row(f"cache off, FINETUNE_NO_CACHE=1 (median of {options.repeats})", off),
                     row("max_length 64 instead of 128 (must re-tokenize)", [changed])]
            notes.append(f"{source}: {first['train_rows']:,} train + {first['eval_rows']:,} eval rows; tokenized ids "
                         f"of cached runs {'identical to' if same else '**differ from**'} the first run's; changing "
                         f"max_length {'re-tokenized' if changed['ids_sha256'] != first['ids_sha256'] else '**hit**'}")
    table = markdown_table(["data", "run", "read s", "check s", "tokenize s", "total s", "of first run", "peak MB"],
                           rows)
    notes.append("read = load_data, check = task.setup (columns, every label), tokenize = task.tokenize of train and "
                 "eval; each run a fresh process, timed after imports and tokenizer loading")
    notes.append("goal: a re-run's data preparation under 10% of the first: "
                 + ", ".join(f"{ratio:.1%}" for ratio in ratios)
                 + (" (met)" if all(ratio < 0.1 for ratio in ratios) else " (missed)"))
    notes.append(load.note())
    append_results("Preprocessing cache: SST-2 data preparation, first run vs re-run", table, notes)


if __name__ == "__main__":
    if not worker_main({"prepare": prepare_worker}):
        main()
