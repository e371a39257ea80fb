"""Mixed precision: bf16 and fp16 training throughput and quality against fp32, same steps, per task family.

    python benchmarks/mixed_precision.py            # GPU; SST-2 2,560 examples, 2 rounds; seq2seq/causal 48 steps
    python benchmarks/mixed_precision.py --quick    # 640 SST-2 examples, 12 seq2seq/causal steps, 1 round
    python benchmarks/mixed_precision.py --cpu      # no GPU: fp32 against bf16 autocast on the CPU
    python benchmarks/mixed_precision.py --cpu --families classification   # one family

Each variant is `finetune.training.run.run(recipe)` (the code path of the CLI) in a fresh process, with only
`train.mixed_precision` changed; evaluation is off during training and run once at the end, so the table also shows
that speed was not bought with quality:

- classification: all-MiniLM-L6-v2 on SST-2, accuracy on the full dev set (872);
- summarization: the random-init t5-small-shaped model of benchmarks/mfu.py on DialogSum, loss on 64 dev dialogues;
- causal-lm: the random-init distilgpt2-shaped model of benchmarks/mfu.py on tinyshakespeare (text mode, blocks of
  128), loss on 64 held-out blocks.

Random-init models learn little in a few steps; their loss still shows whether bf16 trains like fp32.
"""

from __future__ import annotations

import argparse
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


def family_worker(precision: str, family: str, steps: int, models: str, data: dict[str, str],
                  use_cpu: bool) -> dict[str, Any]:
    from mfu import TASKS, recipe_overrides

    from finetune.config.loading import load_recipe
    from finetune.training.run import run

    with tempfile.TemporaryDirectory() as output:
        overrides = [item for item in recipe_overrides(family, models, steps, data)
                     if not item.startswith(("data.max_eval_samples", "train.use_cpu"))]
        recipe = load_recipe(base={"task": TASKS[family]}, overrides=[
            *overrides, "data.max_eval_samples=64", f"train.mixed_precision={precision}",
            f"train.use_cpu={str(use_cpu).lower()}", f"output_dir={output}/run"])
        metrics = run(recipe).metrics
    return {"samples_per_second": metrics["train_samples_per_second"], "quality": metrics["eval_loss"],
            "precision": metrics["mixed_precision"]}


def train_worker(precision: str, examples: int, model: str, data_dir: str, use_cpu: bool) -> dict[str, Any]:
    from finetune.config.loading import load_recipe
    from finetune.training.run import run

    with tempfile.TemporaryDirectory() as output:
        recipe = load_recipe(overrides=[
            f"model.name={model}", "data.dataset=glue/sst2", f"data.data_dir={data_dir}",
            f"data.max_train_samples={examples}", "train.epochs=1", "train.batch_size=32",
            "train.learning_rate=1e-4", "train.eval_strategy=no", f"train.mixed_precision={precision}",
            f"train.use_cpu={str(use_cpu).lower()}", f"output_dir={output}/run"])
        metrics = run(recipe).metrics
    return {"samples_per_second": metrics["train_samples_per_second"], "quality": metrics["eval_accuracy"],
            "precision": metrics["mixed_precision"]}


QUALITY = {"classification": "SST-2 dev accuracy", "summarization": "dev loss", "causal-lm": "held-out loss"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and steps, one round")
    parser.add_argument("--cpu", action="store_true", help="no GPU: compare fp32 and bf16 on the CPU")
    parser.add_argument("--families", default=",".join(QUALITY), help="comma-separated: " + ", ".join(QUALITY))
    args = parser.parse_args()
    if not args.cpu:
        import torch

        if not torch.cuda.is_available():
            sys.exit("No GPU here: run with --cpu to compare fp32 and bf16 on the CPU.")
    families = args.families.split(",")
    examples, steps, rounds = (640, 12, 1) if args.quick else (2560, 48, 2)
    variants = ["no", "bf16"] if args.cpu else ["no", "bf16", "fp16"]
    data = {"glue": str(require_data("glue", "SST-2").parent),
            "dialogsum": str(require_data("summarization", "dialogsum", "train.jsonl")),
            "shakespeare": str(require_data("lm", "tinyshakespeare", "input.txt"))}
    load = LoadTracker()
    results: dict[tuple[str, str], list[dict[str, Any]]] = {(f, v): [] for f in families for v in variants}
    with tempfile.TemporaryDirectory() as models:
        if set(families) - {"classification"}:
            run_worker(Path(__file__).parent / "mfu.py", "build", {
                "folder": models, "dialogsum": data["dialogsum"], "shakespeare": data["shakespeare"]})
        for _ in range(rounds):  # interleaved, so drift in the machine's load hits every variant alike
            for family in families:
                for variant in variants:
                    load.sample()
                    if family == "classification":
                        measured = run_worker(__file__, "train", {
                            "precision": variant, "examples": examples, "model": minilm_path(),
                            "data_dir": str(Path(data["glue"]).parent), "use_cpu": args.cpu})
                    else:
                        measured = run_worker(__file__, "family", {
                            "precision": variant, "family": family, "steps": steps, "models": models,
                            "data": data, "use_cpu": args.cpu})
                    results[family, variant].append({**(measured.result or {}), "peak_mb": measured.peak_mb})
    rows = []
    for family in families:
        baseline = median([r["samples_per_second"] for r in results[family, "no"]])
        for variant in variants:
            runs = results[family, variant]
            speed = median([r["samples_per_second"] for r in runs])
            rows.append([family, variant if variant != "no" else "fp32", speed, speed / baseline,
                         QUALITY[family], median([r["quality"] for r in runs]), max(r["peak_mb"] for r in runs)])
    table = markdown_table(["family", "precision", "train samples/s", "vs fp32", "quality measure", "quality",
                            "peak RSS MB"], rows)
    notes = [load.note(), f"classification: {examples} SST-2 examples, batch 32; summarization and causal-lm: "
             f"{steps} steps of batch 8 (models and data as in benchmarks/mfu.py); {rounds} interleaved round(s)"]
    if args.cpu:
        from finetune.training.arguments import cpu_bf16_support

        notes.append(f"CPU bf16 support: {cpu_bf16_support() or 'none'} (amx: AMX-BF16 tiles; avx512: AVX512-BF16 "
                     f"instructions only)")
    append_results(f"Mixed precision ({'CPU' if args.cpu else 'GPU'}, per task family)", table, notes)


if __name__ == "__main__":
    if not worker_main({"train": train_worker, "family": family_worker}):
        main()
