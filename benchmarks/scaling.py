"""Scaling with data size: data preparation time and peak memory for 10k, 100k and 1M rows against `datasets` alone.

    python benchmarks/scaling.py            # 10k, 100k and 1M rows, one round each
    python benchmarks/scaling.py --quick    # 10k and 100k rows
    python benchmarks/scaling.py --sizes 10000,100000 --rounds 2

Two workloads, each a synthetic file written once:

- classification: a CSV of short sentences with SST-2-like lengths (a mean of about 9 words, a long tail) and 0/1
  labels, all-MiniLM-L6-v2's tokenizer, max_length 128. finetune: `load_data` (reading the file through
  `datasets`), `task.setup` (columns, every label checked) and `task.tokenize`; datasets alone:
  `load_dataset("csv")` and one batched `map` tokenizing the sentences with the labels as ids.
- causal LM: a text file of that many lines (tinyshakespeare-like: short lines, a blank line every ~8), a byte-level
  BPE tokenizer, blocks of 128 tokens. finetune: `load_data`, `task.setup` (5% of the lines held out for evaluation)
  and `task.tokenize` of both splits (text mode: one packed stream); datasets alone: `load_dataset("text")`,
  `map` tokenizing and `map` grouping into blocks as transformers' run_clm.py does.

Every run is a fresh process with empty caches (its own HF_DATASETS_CACHE and FINETUNE_CACHE_DIR), so both sides
parse the file to Arrow and write their tokenized rows to disk. Time is measured after the imports and the tokenizer
load; peak memory is the process's peak resident set (os.wait4), and "growth" the part above its resident set once
imports and tokenizer are loaded. Sizes are interleaved: finetune and datasets alone alternate at each size.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LoadTracker, append_results, markdown_table, median, minilm_path, run_worker, worker_main

BLOCK_SIZE = 128
MAX_LENGTH = 128


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---- synthetic data -----------------------------------------------------------------------------------------------

_VOCABULARY = ("the a of and to is in that it with as for its film movie story this but an on you be not by one all "
          "more about his at like so from has are have than there what her out who up some into if just even much "
          "funny good best little most great characters comedy performances director love life time way too well "
          "make makes made does work never any can only very own new world people better bad something dull "
          "charming moving drama heart could would full enough old picture original thriller script")
_WORDS = _VOCABULARY.split()


def sentence(generator: random.Random) -> str:
    count = min(50, 1 + int(generator.expovariate(1 / 8.5)))
    return " ".join(generator.choice(_WORDS) for _ in range(count))


def write_csv(path: Path, rows: int) -> None:
    generator = random.Random(0)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("sentence,label\n")
        for _ in range(rows):
            handle.write(f"{sentence(generator)},{generator.randint(0, 1)}\n")


def write_text(path: Path, lines: int) -> None:
    generator = random.Random(1)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(lines):
            blank = generator.random() < 0.12
            handle.write("\n" if blank else sentence(generator).capitalize() + ".\n")


# ---- workers (fresh processes) ----------------------------------------------------------------------------------


def finetune_worker(kind: str, path: str, tokenizer_path: str, env: dict[str, str]) -> dict[str, Any]:
    import os
    import time

    os.environ.update(env)
    import datasets  # noqa: F401  (imported before the clock starts, as are the others)
    from transformers import AutoTokenizer

    from finetune.config.loading import load_recipe
    from finetune.data.sources import load_data
    from finetune.tasks import get_task

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if kind == "classification":
        flags = {"train_file": path, "text_columns": ["sentence"], "max_length": MAX_LENGTH}
    else:
        flags = {"train_file": path, "format": "text", "block_size": BLOCK_SIZE, "max_length": BLOCK_SIZE}
    recipe = load_recipe(base={"task": "classification" if kind == "classification" else "generation"},
                         flags={"model": {"name": tokenizer_path}, "data": flags})
    base = _rss_mb()
    start = time.perf_counter()
    data = load_data(recipe.data)
    loaded = time.perf_counter()
    task = get_task(recipe)
    task.setup(data)
    checked = time.perf_counter()
    assert data.train is not None
    outputs = [task.tokenize(data.train, tokenizer), *(task.tokenize(split, tokenizer) for split in data.eval.values())]
    end = time.perf_counter()
    return {"seconds": end - start, "load_s": loaded - start, "setup_s": checked - loaded, "tokenize_s": end - checked,
            "base_mb": base, "rows": sum(map(len, outputs))}


def datasets_worker(kind: str, path: str, tokenizer_path: str, env: dict[str, str]) -> dict[str, Any]:
    import os
    import time

    os.environ.update(env)
    import datasets
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    base = _rss_mb()
    start = time.perf_counter()
    if kind == "classification":
        raw = datasets.load_dataset("csv", data_files={"train": path}, split="train")

        def encode(batch: dict[str, list]) -> dict[str, list]:
            encoded = tokenizer(batch["sentence"], truncation=True, max_length=MAX_LENGTH)
            encoded["labels"] = batch["label"]
            return encoded

        output = raw.map(encode, batched=True, remove_columns=raw.column_names)
    else:
        raw = datasets.load_dataset("text", data_files={"train": path}, split="train")
        eos = tokenizer.eos_token_id

        def tokenize(batch: dict[str, list]) -> dict[str, list]:
            return {"input_ids": [[*ids, eos] for ids in tokenizer(batch["text"], verbose=False)["input_ids"]]}

        def group_texts(batch: dict[str, list]) -> dict[str, list]:  # run_clm.py's grouping
            stream = [token for ids in batch["input_ids"] for token in ids]
            total = len(stream) // BLOCK_SIZE * BLOCK_SIZE
            return {"input_ids": [stream[index:index + BLOCK_SIZE] for index in range(0, total, BLOCK_SIZE)]}

        tokenized = raw.map(tokenize, batched=True, remove_columns=raw.column_names)
        output = tokenized.map(group_texts, batched=True)
    end = time.perf_counter()
    return {"seconds": end - start, "load_s": float("nan"), "setup_s": float("nan"), "tokenize_s": float("nan"),
            "base_mb": base, "rows": len(output)}


# ---- driver --------------------------------------------------------------------------------------------------------


def build_bpe(folder: Path, text_file: Path) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from finetune.models.tiny import train_byte_bpe_tokenizer

    lines = [line for line in text_file.read_text(encoding="utf-8").splitlines()[:20000] if line]
    tokenizer = train_byte_bpe_tokenizer(lines, vocab_size=2000)
    tokenizer.save_pretrained(folder)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k rows only")
    parser.add_argument("--sizes", help="comma-separated row counts [10000,100000,1000000]")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds per size, median [1]")
    parser.add_argument("--kinds", default="classification,causal_lm")
    options = parser.parse_args()
    sizes = ([int(size) for size in options.sizes.split(",")] if options.sizes
             else [10_000, 100_000] if options.quick else [10_000, 100_000, 1_000_000])
    kinds = options.kinds.split(",")
    load = LoadTracker()
    rows: list[list[Any]] = []
    summary: dict[tuple[str, str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="finetune-scaling-") as scratch:
        folder = Path(scratch)
        largest = max(sizes)
        files = {"classification": folder / "sentences.csv", "causal_lm": folder / "lines.txt"}
        write_csv(files["classification"], largest)
        write_text(files["causal_lm"], largest)
        tokenizers = {"classification": minilm_path(), "causal_lm": build_bpe(folder / "bpe", files["causal_lm"])}
        run_number = 0
        for kind in kinds:
            for size in sizes:
                path = folder / f"{kind}-{size}{files[kind].suffix}"
                with files[kind].open(encoding="utf-8") as source, path.open("w", encoding="utf-8") as target:
                    for index, line in enumerate(source):
                        if index >= size + (kind == "classification"):  # the CSV's header line
                            break
                        target.write(line)
                results: dict[str, list[dict[str, Any]]] = {"finetune": [], "datasets": []}
                for round_index in range(options.rounds):
                    order = ["finetune", "datasets"] if round_index % 2 == 0 else ["datasets", "finetune"]
                    for side in order:
                        run_number += 1
                        caches = folder / f"caches-{run_number}"
                        env = {"HF_DATASETS_CACHE": str(caches / "datasets"),
                               "FINETUNE_CACHE_DIR": str(caches / "finetune")}
                        load.sample()
                        measured = run_worker(__file__, side, {"kind": kind, "path": str(path),
                                                               "tokenizer_path": tokenizers[kind], "env": env})
                        results[side].append({**measured.result, "peak_mb": measured.peak_mb})
                        print(f"{kind} {size:,} {side}: {measured.result['seconds']:.2f} s, peak "
                              f"{measured.peak_mb:.0f} MB", flush=True)
                for side, runs in results.items():
                    picked = {key: median([run[key] for run in runs])
                              for key in ("seconds", "load_s", "setup_s", "tokenize_s", "base_mb", "peak_mb")}
                    picked["growth_mb"] = picked["peak_mb"] - picked["base_mb"]
                    picked["rows"] = runs[0]["rows"]
                    summary[(kind, side, size)] = picked
    for kind in kinds:
        for size in sizes:
            ours, theirs = summary[(kind, "finetune", size)], summary[(kind, "datasets", size)]
            smallest = summary[(kind, "finetune", sizes[0])]
            for side, picked in (("finetune", ours), ("datasets alone", theirs)):
                rows.append([kind, f"{size:,}", side, f"{picked['seconds']:.2f}",
                             f"{picked['seconds'] / size * 1e6:.1f}",
                             "" if side != "finetune" else f"{picked['load_s']:.2f} / {picked['setup_s']:.2f} / "
                                                           f"{picked['tokenize_s']:.2f}",
                             f"{picked['peak_mb']:.0f}", f"{picked['growth_mb']:.0f}",
                             "" if side != "finetune" else f"{ours['seconds'] / theirs['seconds']:.2f}x",
                             "" if side != "finetune" else f"{ours['peak_mb'] / theirs['peak_mb']:.2f}x",
                             f"{picked['rows']:,}"])
            del smallest
    table = markdown_table(["workload", "rows", "side", "time s", "µs per row", "read / check / tokenize s",
                            "peak MB", "growth MB", "time vs datasets", "peak vs datasets", "output rows"], rows)
    notes = [f"{options.rounds} interleaved round(s) per size, median; each run a fresh process with empty caches, "
             "timed after imports and tokenizer loading; growth = peak RSS minus RSS after imports"]
    for kind in kinds:
        first, last = sizes[0], sizes[-1]
        ours_first, ours_last = summary[(kind, "finetune", first)], summary[(kind, "finetune", last)]
        per_row = [summary[(kind, "finetune", size)]["seconds"] / size * 1e6 for size in sizes]
        time_ratio = max(summary[(kind, "finetune", size)]["seconds"] / summary[(kind, "datasets", size)]["seconds"]
                         for size in sizes)
        peak_ratio = max(summary[(kind, "finetune", size)]["peak_mb"] / summary[(kind, "datasets", size)]["peak_mb"]
                         for size in sizes)
        notes.append(
            f"{kind}: time per row {', '.join(f'{value:.1f}' for value in per_row)} µs at "
            f"{', '.join(f'{size:,}' for size in sizes)} rows; memory growth {ours_first['growth_mb']:.0f} MB at "
            f"{first:,} rows, {ours_last['growth_mb']:.0f} MB at {last:,}; worst ratio to datasets alone: time "
            f"{time_ratio:.2f}x, peak memory {peak_ratio:.2f}x (goal <= 1.5x: "
            f"{'met' if max(time_ratio, peak_ratio) <= 1.5 else 'missed'})")
    notes.append(load.note())
    append_results("Scaling with data size: data preparation, finetune vs datasets alone", table, notes)


if __name__ == "__main__":
    if not worker_main({"finetune": finetune_worker, "datasets": datasets_worker}):
        main()
