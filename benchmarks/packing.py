"""Packing efficiency for causal LM text mode: how much of the computed batch is real text, and how much text is kept.

    python benchmarks/packing.py            # tinyshakespeare and WikiText-2 valid, block sizes 128 and 512
    python benchmarks/packing.py --quick    # tinyshakespeare, block size 256

finetune's text mode (tasks/causal_lm.py) tokenizes documents, ends each with EOS, concatenates the whole split
into one stream and cuts it into full blocks of `block_size` tokens; only the final partial block is dropped. It is
compared, on the same token ids, with what users otherwise do:

- one document per example, truncated to block_size, batches padded to their longest example (random order);
- the same in length-grouped order (finetune's sampler), which pads less but still truncates;
- transformers' run_clm.py `group_texts`: concatenation per `map` batch of 1,000 documents, dropping each batch's
  remainder (it can drop a block's worth of tokens per 1,000 documents).

Packing efficiency = real tokens / token positions computed (padding is computed but not real); tokens kept =
tokens in the training examples / tokens in the documents (with their EOS). The tokenizer is a byte-level BPE
trained on the text by tests.builders (no GPT-2 tokenizer offline); data is read, split (5% held out for
evaluation when there is no validation file) and tokenized by finetune's own task code, in a fresh process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LoadTracker, append_results, markdown_table, require_data, run_worker, worker_main

BATCH_SIZE = 8


def efficiency(lengths: list[int], order: list[int], batch_size: int) -> float:
    from finetune.data.sampling import padding_efficiency

    return padding_efficiency(lengths, order, batch_size)


def pack_worker(text_file: str, block_size: int, folder: str) -> dict[str, Any]:
    import torch

    from finetune.config.loading import load_recipe
    from finetune.data.sampling import length_grouped_indices
    from finetune.data.sources import load_data
    from finetune.models.tiny import build_tiny_gpt2
    from finetune.tasks import get_task

    lines = Path(text_file).read_text(encoding="utf-8").splitlines()
    model_dir = build_tiny_gpt2(Path(folder) / f"gpt2-{Path(text_file).stem}", lines[:20000], vocab_size=2000)
    recipe = load_recipe(base={"task": "generation"}, flags={
        "model": {"name": str(model_dir)},
        "data": {"train_file": text_file, "format": "text", "block_size": block_size, "max_length": block_size}})
    task = get_task(recipe)
    data = load_data(recipe.data)
    task.setup(data)
    model, tokenizer = task.load_model()
    del model
    blocks = task.tokenize(data.train, tokenizer)
    documents = task.documents(data.train[task.text_column], line_based=True)
    ids = [[*row, tokenizer.eos_token_id] for row in tokenizer(documents, verbose=False)["input_ids"]]
    total = sum(map(len, ids))
    block_lengths = [len(row) for row in blocks.with_format("arrow")["input_ids"].to_pylist()]
    packed_kept = sum(block_lengths)
    truncated = [min(len(row), block_size) for row in ids]
    generator = torch.Generator().manual_seed(0)
    random_order = torch.randperm(len(truncated), generator=generator).tolist()
    grouped_order = length_grouped_indices(truncated, BATCH_SIZE, generator)
    # run_clm.py group_texts: map(batched=True, batch_size=1000), remainder of each batch dropped.
    clm_kept = sum(sum(map(len, ids[start:start + 1000])) // block_size * block_size
                   for start in range(0, len(ids), 1000))
    return {
        "documents": len(ids), "tokens": total, "blocks": len(block_lengths),
        "full_blocks": sum(length == block_size for length in block_lengths),
        "rows": [
            ["finetune text mode (one packed stream)", efficiency(block_lengths, list(range(len(block_lengths))),
                                                                  BATCH_SIZE), packed_kept / total],
            ["one document per example, random order, padded", efficiency(truncated, random_order, BATCH_SIZE),
             sum(truncated) / total],
            ["one document per example, length-grouped, padded", efficiency(truncated, grouped_order, BATCH_SIZE),
             sum(truncated) / total],
            ["run_clm group_texts (per 1,000 documents)", 1.0, clm_kept / total],
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tinyshakespeare, block size 256")
    options = parser.parse_args()
    texts = {"tinyshakespeare": require_data("lm", "tinyshakespeare", "input.txt")}
    if not options.quick:
        texts["WikiText-2 valid"] = require_data("lm", "wikitext-2", "valid.txt")
    block_sizes = [256] if options.quick else [128, 512]
    load = LoadTracker()
    rows, notes, packed = [], [], []
    with tempfile.TemporaryDirectory(prefix="finetune-packing-bench-") as folder:
        for name, path in texts.items():
            for block_size in block_sizes:
                load.sample()
                measured = run_worker(__file__, "pack", {"text_file": str(path), "block_size": block_size,
                                                         "folder": folder})
                result = measured.result
                for index, (label, packing, kept) in enumerate(result["rows"]):
                    rows.append([name, block_size, label, f"{packing:.3f}", f"{kept:.4f}",
                                 f"{packing * kept:.3f}", f"{measured.peak_mb:.0f}" if index == 0 else ""])
                packed.append((f"{name} / {block_size}", result["rows"][0][1], result["rows"][0][2]))
                notes.append(f"{name}, block size {block_size}: {result['documents']:,} training documents, "
                             f"{result['tokens']:,} tokens, {result['blocks']:,} blocks ({result['full_blocks']:,} "
                             f"full)")
    table = markdown_table(["text", "block size", "examples", "packing efficiency", "tokens kept",
                            "efficiency x kept", "peak MB"], rows)
    notes.append(f"batches of {BATCH_SIZE}; packing efficiency = real tokens / positions computed; tokens kept = "
                 "training tokens / document tokens; peak MB: the process that read, tokenized and packed the text")
    notes.append("goal: packing efficiency >= 0.98: "
                 + ", ".join(f"{label} {value:.3f} (kept {kept:.4f})" for label, value, kept in packed)
                 + (" (met)" if all(value >= 0.98 for _, value, _ in packed) else " (missed)"))
    notes.append(load.note())
    append_results("Packing: causal LM text mode", table, notes)


if __name__ == "__main__":
    if not worker_main({"pack": pack_worker}):
        main()
