"""Mixed precision: bf16 and fp16 training throughput against fp32, same steps, for a machine with a GPU.

    python benchmarks/mixed_precision.py            # 2,560 SST-2 examples, all-MiniLM-L6-v2, 2 rounds
    python benchmarks/mixed_precision.py --quick    # 640 examples, 1 round
    python benchmarks/mixed_precision.py --cpu      # no GPU: fp32 against bf16 on the CPU (fp16 is GPU-only here)

Each variant is `finetune.training.run.run(recipe)` (the code path of `finetune classify`) in a fresh process, with only
`train.mixed_precision` changed; evaluation is off during training and run once at the end on the full SST-2 dev
set, so the table also shows that speed was not bought with accuracy.
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
    return {"samples_per_second": metrics["train_samples_per_second"], "accuracy": metrics["eval_accuracy"],
            "precision": metrics["mixed_precision"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="640 examples, one round")
    parser.add_argument("--cpu", action="store_true", help="no GPU: compare fp32 and bf16 on the CPU")
    args = parser.parse_args()
    if not args.cpu:
        import torch

        if not torch.cuda.is_available():
            sys.exit("No GPU here: run with --cpu to compare fp32 and bf16 on the CPU.")
    examples, rounds = (640, 1) if args.quick else (2560, 2)
    variants = ["no", "bf16"] if args.cpu else ["no", "bf16", "fp16"]
    config = {"examples": examples, "model": minilm_path(), "data_dir": str(require_data("glue", "SST-2").parents[1]),
              "use_cpu": args.cpu}
    load = LoadTracker()
    results: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
    for _ in range(rounds):  # interleaved, so drift in the machine's load hits every variant alike
        for variant in variants:
            load.sample()
            measured = run_worker(__file__, "train", {"precision": variant, **config})
            results[variant].append({**measured.result, "peak_mb": measured.peak_mb})
    baseline = median([r["samples_per_second"] for r in results["no"]])
    rows = []
    for variant in variants:
        speed = median([r["samples_per_second"] for r in results[variant]])
        rows.append([variant if variant != "no" else "fp32", speed, speed / baseline,
                     median([r["accuracy"] for r in results[variant]]),
                     max(r["peak_mb"] for r in results[variant])])
    table = markdown_table(["precision", "train samples/s", "vs fp32", "SST-2 dev accuracy", "peak RSS MB"], rows)
    append_results(f"Mixed precision ({'CPU' if args.cpu else 'GPU'}, {examples} SST-2 examples, "
                   f"all-MiniLM-L6-v2)", table, [load.note()])


if __name__ == "__main__":
    if not worker_main({"train": train_worker}):
        main()
