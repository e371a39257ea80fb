"""The table a GPU user needs: training throughput in fp32 / fp16 / bf16, with torch_compile off and on, MFU against
the GPU's measured and published peak, and SST-2 accuracy parity between the precisions. Under 8 minutes on one GPU.

    python benchmarks/gpu.py              # one GPU: 8,000 SST-2 examples (250 steps of 32) per variant
    python benchmarks/gpu.py --cpu        # no GPU: the same script end to end on the CPU, tiny budgets

Every variant is `finetune.training.run.run(recipe)` (the code path of `finetune classify`: all-MiniLM-L6-v2, SST-2,
batch 32, learning rate 1e-4, one epoch, finetune's defaults otherwise) in a fresh process, with only
`train.mixed_precision` and `train.torch_compile` changed; accuracy is measured once after training on the SST-2 dev
set. FLOPs per step as in benchmarks/flops.py (6 x weights x tokens + attention, real tokens); MFU = those FLOPs /
train_runtime / peak, the peak of the precision's matrix products: measured by `torch.matmul` (4096^3 on a GPU,
fp32 with TF32 off and on, fp16, bf16) and, where the device name is in PUBLISHED_PEAKS, the vendor's dense peak.
A small model at batch 32 is far from any GPU's limit: the MFU column says how far.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    LoadTracker,
    append_results,
    markdown_table,
    minilm_path,
    require_data,
    run_worker,
    worker_main,
)

# Dense (no sparsity) peak TFLOP/s from the vendors' data sheets: fp32 (plain), tf32, fp16 and bf16 tensor cores.
# Matched by substring of torch.cuda.get_device_name(), first match wins (H200 and H100 SXM share their compute).
PUBLISHED_PEAKS: list[tuple[str, dict[str, float]]] = [
    ("H200", {"fp32": 67, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5}),
    ("H100 PCIe", {"fp32": 51, "tf32": 378, "fp16": 756, "bf16": 756}),
    ("H100", {"fp32": 67, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5}),
    ("A100", {"fp32": 19.5, "tf32": 156, "fp16": 312, "bf16": 312}),
    ("L40S", {"fp32": 91.6, "tf32": 183, "fp16": 362, "bf16": 362}),
    ("L4", {"fp32": 30.3, "tf32": 60, "fp16": 121, "bf16": 121}),
    ("A10", {"fp32": 31.2, "tf32": 62.5, "fp16": 125, "bf16": 125}),
    ("RTX 4090", {"fp32": 82.6, "tf32": 82.6, "fp16": 165.2, "bf16": 165.2}),
    ("V100", {"fp32": 15.7, "fp16": 125}),
    ("T4", {"fp32": 8.1, "fp16": 65}),
]

# (mixed_precision, torch_compile); fp16 is dropped where it does not run (CPUs), bf16 where the GPU lacks it.
VARIANTS = [("no", False), ("fp16", False), ("bf16", False), ("no", True), ("bf16", True)]


def published_peak(device: str) -> dict[str, float]:
    return next((peaks for name, peaks in PUBLISHED_PEAKS if name.lower() in device.lower()), {})


def peak_worker(cpu: bool) -> dict[str, Any]:
    """Matrix-product FLOP/s per precision: the device's practical peak."""
    import time

    import torch

    device = "cpu" if cpu else "cuda"
    size = 1024 if cpu else 4096
    name = "CPU" if cpu else torch.cuda.get_device_name()
    results: dict[str, float] = {}
    for label, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                               ("fp16", torch.float16, False), ("bf16", torch.bfloat16, False)):
        if cpu and label in ("tf32", "fp16"):
            continue
        if not cpu and label == "bf16" and not torch.cuda.is_bf16_supported():
            continue
        if not cpu:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(size, size, dtype=dtype, device=device)
        b = torch.randn(size, size, dtype=dtype, device=device)
        best = 0.0
        for _ in range(5):
            if not cpu:
                torch.cuda.synchronize()
            start, repeats = time.perf_counter(), 0
            while time.perf_counter() - start < 0.2:
                torch.matmul(a, b)
                repeats += 1
                if not cpu and repeats % 10 == 0:
                    torch.cuda.synchronize()
            if not cpu:
                torch.cuda.synchronize()
            best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start))
        results[label] = best
    return {"device": name, "peaks": results, "bf16_supported": cpu or torch.cuda.is_bf16_supported(),
            # finetune turns TF32 on for Ampere and newer (training/arguments.py): fp32 runs multiply in TF32 there
            "tf32_used": not cpu and torch.cuda.get_device_capability()[0] >= 8}


def train_worker(precision: str, compile_: bool, examples: int, eval_examples: int, data_dir: str,
                 cpu: bool) -> dict[str, Any]:
    from mfu import flop_callback

    from finetune.config.loading import load_recipe
    from finetune.training.run import run

    callback = flop_callback()
    with tempfile.TemporaryDirectory() as output:
        recipe = load_recipe(overrides=[
            f"model.name={minilm_path()}", "data.dataset=glue/sst2", f"data.data_dir={data_dir}",
            f"data.max_train_samples={examples}", f"data.max_eval_samples={eval_examples}", "train.epochs=1",
            "train.batch_size=32", "train.learning_rate=1e-4", "train.eval_strategy=no",
            f"train.mixed_precision={precision}", f"train.torch_compile={str(compile_).lower()}",
            f"train.use_cpu={str(cpu).lower()}", f"output_dir={output}/run"])
        metrics = run(recipe, callbacks=[callback]).metrics
    return {"samples_per_second": metrics["train_samples_per_second"], "seconds": metrics["train_runtime"],
            "accuracy": metrics["eval_accuracy"], "precision": metrics["mixed_precision"],
            "model_flops": callback.model_flops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="no GPU: run end to end on the CPU with tiny budgets")
    parser.add_argument("--examples", type=int, default=None, help="SST-2 training examples per variant")
    args = parser.parse_args()
    if not args.cpu:
        import torch

        if not torch.cuda.is_available():
            sys.exit("No GPU here: run with --cpu to try the script on the CPU.")
    examples = args.examples or (256 if args.cpu else 8000)
    eval_examples = 200 if args.cpu else 872
    data_dir = str(require_data("glue", "SST-2").parents[1])
    load = LoadTracker()
    load.sample()
    peak = run_worker(__file__, "peak", {"cpu": args.cpu}).result or {}
    published = published_peak(peak["device"]) if not args.cpu else {}
    rows, failures = [], []
    for precision, compile_ in VARIANTS:
        if (args.cpu and precision == "fp16") or (precision == "bf16" and not peak["bf16_supported"]):
            continue
        load.sample()
        try:
            result = run_worker(__file__, "train", {
                "precision": precision, "compile_": compile_, "examples": examples, "eval_examples": eval_examples,
                "data_dir": data_dir, "cpu": args.cpu}, timeout=900).result or {}
        except RuntimeError as error:  # one variant failing (a compiler missing, say) must not lose the others
            lines = str(error).splitlines()
            reason = next((line for line in reversed(lines) if re.match(r"^[\w.]+(Error|Exception)\b", line)),
                          lines[-1])
            failures.append(f"{precision}, torch_compile={compile_}: {reason[:300]}")
            continue
        # The matrix products' precision: fp32 runs use TF32 on Ampere and newer GPUs (finetune turns it on).
        kind = {"no": "tf32" if peak["tf32_used"] else "fp32"}.get(precision, precision)
        achieved = result["model_flops"] / result["seconds"]
        measured = peak["peaks"].get(kind)
        rows.append([{"no": "fp32"}.get(precision, precision), "on" if compile_ else "off",
                     result["samples_per_second"], achieved / 1e12, kind,
                     (measured or float("nan")) / 1e12, achieved / measured if measured else float("nan"),
                     published.get(kind, float("nan")),
                     achieved / 1e12 / published[kind] if kind in published else float("nan"),
                     result["accuracy"]])
    if not rows:
        sys.exit("No variant ran:\n" + "\n".join(failures))
    base = rows[0][2]
    for row in rows:
        row.insert(3, row[2] / base)
    table = markdown_table(["precision", "torch_compile", "train samples/s", "vs fp32", "model TFLOP/s",
                            "matmul kind", "measured peak TFLOP/s", "MFU (measured peak)", "published peak TFLOP/s",
                            "MFU (published)", "SST-2 dev accuracy"], rows)
    notes = [load.note(), f"device: {peak['device']}; all-MiniLM-L6-v2, {examples} SST-2 training examples, batch "
             f"32, one epoch; accuracy on {eval_examples} dev examples; each variant a fresh process",
             "peaks measured: " + ", ".join(f"{kind} {value / 1e12:.3g} TFLOP/s"
                                            for kind, value in peak["peaks"].items())]
    notes += [f"failed: {failure}" for failure in failures]
    append_results(f"GPU script ({'--cpu' if args.cpu else peak['device']})", table, notes)


if __name__ == "__main__":
    if not worker_main({"peak": peak_worker, "train": train_worker}):
        main()
