"""Preprocessing cache: the data preparation of a second, identical run against the first, for every task family.

    python benchmarks/preprocessing_cache.py            # every family on real data (below)
    python benchmarks/preprocessing_cache.py --quick    # SST-2 from the GLUE TSVs only
    python benchmarks/preprocessing_cache.py --families dialogsum,wnut17 --repeats 1

Data preparation is what a training command does between loading the tokenizer and loading the model: read the
data (load_data), check columns and labels (task.setup) and tokenize the training and evaluation splits
(task.tokenize). Workloads (--families), all from the shared data folder:

- sst2-tsv, sst2-jsonl: classification, all 67,349 SST-2 training rows and the 872 dev rows (GLUE TSVs, and the same
  rows as jsonl files), all-MiniLM-L6-v2's tokenizer;
- goemotions: multi-label classification, GoEmotions' 43,410 training and 5,426 dev rows (TSV), MiniLM's tokenizer;
- wnut17: NER, WNUT-17 CoNLL files (3,394 + 1,009 sentences), MiniLM's tokenizer;
- dialogsum: summarization, DialogSum's 12,460 training and 500 validation dialogues, a T5-style tokenizer;
- multi30k: translation en->de, Multi30k's 29,000 + 1,014 line-aligned sentence pairs, a T5-style tokenizer;
- tinyshakespeare: causal LM text mode (packed blocks), 40,000 lines (5% held out), a byte-level BPE tokenizer;
- hh-rlhf: chat, HH-RLHF helpful-base's 2,344 conversations (5% held out), default ChatML template, that BPE tokenizer.

The T5-style and BPE tokenizers are the tiny models' (finetune.models.tiny), trained on the data: no real T5 or
GPT-2 is available offline; tokenizing speed is what matters here. Each run is a fresh process, timed after its
imports. The caches start empty (FINETUNE_CACHE_DIR and HF_DATASETS_CACHE point at a new temporary folder), so
the first run is a cold one. Rows:

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

WORKLOADS = ("sst2-tsv", "sst2-jsonl", "goemotions", "wnut17", "dialogsum", "multi30k", "tinyshakespeare",
             "hh-rlhf")


def prepare_worker(model: str, flags: dict[str, Any], env: dict[str, str], task: str = "classification"
                   ) -> dict[str, Any]:
    import hashlib
    import os
    import time

    os.environ.update(env)
    import datasets  # noqa: F401  (imported before the clock starts, as are the others)
    from transformers import AutoTokenizer

    from finetune.config.loading import load_recipe
    from finetune.data.sources import load_data
    from finetune.tasks import get_task

    recipe = load_recipe(base={"task": task}, flags={"model": {"name": model}, **flags})
    tokenizer = AutoTokenizer.from_pretrained(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # as models.loading.load_tokenizer does
    start = time.perf_counter()
    data = load_data(recipe.data)
    loaded = time.perf_counter()
    prepared = get_task(recipe)
    prepared.setup(data)
    checked = time.perf_counter()
    train = prepared.tokenize(data.train, tokenizer)
    evaluation = {name: prepared.tokenize(split, tokenizer) for name, split in data.eval.items()}
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


def tiny_models(folder: Path, data_dir: Path) -> dict[str, str]:
    """A T5-style and a GPT-2-style tiny model (tokenizers trained on the data; the weights are not used)."""
    from finetune.models.tiny import build_tiny_gpt2, build_tiny_t5

    dialogues = [json.loads(line)["dialogue"] for line in
                 (data_dir / "summarization" / "dialogsum" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    german = (data_dir / "translation" / "multi30k" / "train.de").read_text(encoding="utf-8").splitlines()
    shakespeare = (data_dir / "lm" / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8").splitlines()
    return {"t5": str(build_tiny_t5(folder / "t5", dialogues[:3000] + german[:3000], vocab_size=4000)),
            "gpt2": str(build_tiny_gpt2(folder / "gpt2", shakespeare[:20000] + dialogues[:2000], vocab_size=4000))}


def workloads(names: list[str], scratch: Path, data_dir: Path) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """name -> (task, tokenizer: minilm/t5/gpt2, data flags)."""
    found: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for name in names:
        if name == "sst2-tsv":
            found[name] = ("classification", "minilm", {"dataset": "glue/sst2", "data_dir": str(data_dir)})
        elif name == "sst2-jsonl":
            train_file, dev_file = write_jsonl(scratch, data_dir)
            found[name] = ("classification", "minilm", {"train_file": str(train_file),
                                                         "validation_file": str(dev_file),
                                                         "text_columns": ["sentence"]})
        elif name == "goemotions":
            folder = data_dir / "classification" / "goemotions"
            found[name] = ("classification", "minilm", {
                "train_file": str(folder / "train.tsv"), "validation_file": str(folder / "dev.tsv"),
                "column_names": ["text", "labels", "id"], "multi_label": True,
                "label_names": str(folder / "emotions.txt"), "text_columns": ["text"], "label_column": "labels"})
        elif name == "wnut17":
            folder = data_dir / "ner" / "wnut17"
            found[name] = ("token_classification", "minilm", {"train_file": str(folder / "wnut17train.conll"),
                                                              "validation_file": str(folder / "emerging.dev.conll")})
        elif name == "dialogsum":
            folder = data_dir / "summarization" / "dialogsum"
            found[name] = ("summarization", "t5", {"train_file": str(folder / "train.jsonl"),
                                                   "validation_file": str(folder / "validation.jsonl")})
        elif name == "multi30k":
            folder = data_dir / "translation" / "multi30k"
            found[name] = ("translation", "t5", {"train_file": str(folder / "train"), "validation_file":
                                                 str(folder / "val"), "source_lang": "en", "target_lang": "de"})
        elif name == "tinyshakespeare":
            found[name] = ("generation", "gpt2", {"train_file": str(data_dir / "lm" / "tinyshakespeare" / "input.txt"),
                                                  "format": "text"})
        elif name == "hh-rlhf":
            found[name] = ("generation", "gpt2", {
                "train_file": str(data_dir / "chat" / "hh-rlhf-helpful-base" / "test_messages.jsonl"),
                "format": "chat", "max_length": 512})
        else:
            sys.exit(f"unknown workload {name}: choose from {', '.join(WORKLOADS)}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only SST-2 from the GLUE TSVs")
    parser.add_argument("--families", default=",".join(WORKLOADS), help="workloads, comma-separated [all]")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per row, median [3]")
    options = parser.parse_args()
    data_dir = require_data("glue", "SST-2", "train.tsv").parents[2]
    load = LoadTracker()
    rows, notes, ratios = [], [], []
    with tempfile.TemporaryDirectory(prefix="finetune-cache-bench-") as scratch:
        scratch_path = Path(scratch)
        names = ["sst2-tsv"] if options.quick else options.families.split(",")
        sources = workloads(names, scratch_path, data_dir)
        models = {"minilm": minilm_path()}
        if any(kind != "minilm" for _, kind, _ in sources.values()):
            models.update(tiny_models(scratch_path / "models", data_dir))
        for index, (source, (task, tokenizer_kind, data_flags)) in enumerate(sources.items()):
            model = models[tokenizer_kind]
            cache = scratch_path / f"cache-{index}"
            env = {"FINETUNE_CACHE_DIR": str(cache / "finetune"), "HF_DATASETS_CACHE": str(cache / "datasets")}

            length = data_flags.get("max_length", 128)

            def run(env_extra: dict[str, str] | None = None, max_length: int = length) -> dict[str, Any]:
                load.sample()
                flags = {"data": {**data_flags, "max_length": max_length}}
                measured = run_worker(__file__, "prepare", {"model": model, "flags": flags, "task": task,
                                                            "env": {**env, **(env_extra or {})}})
                return {**measured.result, "peak_mb": measured.peak_mb}

            first = run()
            warm = [run() for _ in range(options.repeats)]
            off = [run({"FINETUNE_NO_CACHE": "1"}) for _ in range(options.repeats)]
            changed = run(max_length=length // 2)
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
                     row(f"max_length {length // 2} instead of {length} (must re-tokenize)", [changed])]
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
    append_results("Preprocessing cache: data preparation of every task family, first run vs re-run", table, notes)


if __name__ == "__main__":
    if not worker_main({"prepare": prepare_worker}):
        main()
