"""Distance to the hardware limit: achieved FLOP/s and MFU of finetune's training, per task family, against this
machine's matrix-product peak; and a torch.profiler breakdown of the training steps.

    python benchmarks/mfu.py            # 24 steps per family, 2 interleaved rounds
    python benchmarks/mfu.py --quick    # 8 steps per family, 1 round
    python benchmarks/mfu.py --profile  # also a torch.profiler table per family (where the step's time goes)

Families and models (every run is `finetune.training.run.run(recipe)`, the code path of the CLI, in a fresh process):

- classification: the real all-MiniLM-L6-v2 (6 layers, width 384, ff 1536) on SST-2, batch 32, max_length 128;
- summarization: a random-init model shaped like t5-small (6+6 layers, d_model 512, d_ff 2048, 8 heads x 64) with a
  T5-style tokenizer of 8,192 pieces trained on DialogSum (no pretrained T5 offline), DialogSum, batch 8, source
  128 and target 32 tokens;
- causal LM (text mode, packed blocks): a random-init model shaped like distilgpt2 (6 layers, width 768, 12 heads;
  GPT-2 small has 12 such layers) with a byte-level BPE of 8,192 pieces trained on tinyshakespeare, blocks of 128
  tokens, batch 8.

FLOPs are counted by benchmarks/flops.py (formula in its docstring; checked against torch.utils.flop_counter on a
real batch of each model: the "formula / counted" column). Peak: `torch.matmul` at the shapes the model's layers
have (tokens of a batch x width x width and x feed-forward width), fp32 and bf16, all cores, measured in the same
invocation. MFU = model FLOPs on real tokens / training time (the Trainer's train_runtime: data loading,
optimizer and logging included) / fp32 peak.
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

FAMILIES = ("classification", "summarization", "causal-lm")
VOCAB = 8192


# ---- models and recipes -------------------------------------------------------------------------------------------


def build_worker(folder: str, dialogsum: str, shakespeare: str) -> dict[str, Any]:
    """The random-init t5-small-shaped and distilgpt2-shaped models, with tokenizers trained on their data."""
    import json

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    from finetune.models.tiny import train_byte_bpe_tokenizer, train_t5_tokenizer

    dialogues = [json.loads(line) for line in Path(dialogsum).read_text(encoding="utf-8").splitlines()]
    texts = [row["dialogue"] for row in dialogues] + [row["summary"] for row in dialogues]
    tokenizer = train_t5_tokenizer(texts, VOCAB)
    config = T5Config(vocab_size=len(tokenizer), d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
                      num_heads=8, dropout_rate=0.1, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)  # type: ignore[call-arg]
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(Path(folder) / "t5")
    tokenizer.save_pretrained(Path(folder) / "t5")
    lines = Path(shakespeare).read_text(encoding="utf-8").splitlines()
    tokenizer = train_byte_bpe_tokenizer(lines, VOCAB)
    gpt2 = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=768, n_layer=6, n_head=12,
                      bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(gpt2).save_pretrained(Path(folder) / "gpt2")
    tokenizer.save_pretrained(Path(folder) / "gpt2")
    return {}


def recipe_overrides(family: str, models: str, steps: int, data: dict[str, str]) -> list[str]:
    common = [f"train.max_steps={steps}", "train.eval_strategy=no", "train.use_cpu=true",
              "data.max_eval_samples=8", "train.learning_rate=1e-4", "train.logging_steps=4"]
    if family == "classification":
        return [*common, f"model.name={minilm_path()}", "data.dataset=glue/sst2", f"data.data_dir={data['glue']}",
                f"data.max_train_samples={32 * steps}", "train.batch_size=32", "data.max_length=128"]
    if family == "summarization":
        folder = Path(data["dialogsum"]).parent
        return [*common, f"model.name={models}/t5", f"data.train_file={folder / 'train.jsonl'}",
                f"data.validation_file={folder / 'validation.jsonl'}", f"data.max_train_samples={8 * steps}",
                "train.batch_size=8", "data.max_length=128", "data.max_target_length=32",
                "generation.max_new_tokens=4", "generation.num_beams=1"]
    return [*common, f"model.name={models}/gpt2", f"data.train_file={data['shakespeare']}", "data.format=text",
            "data.block_size=128", "train.batch_size=8", "generation.max_new_tokens=4"]


TASKS = {"classification": "classification", "summarization": "summarization", "causal-lm": "generation"}


def _recipe(family: str, models: str, steps: int, data: dict[str, str], output: str) -> Any:
    from finetune.config.loading import load_recipe

    return load_recipe(base={"task": TASKS[family]},
                       overrides=[*recipe_overrides(family, models, steps, data), f"output_dir={output}/run"])


def flop_callback() -> Any:
    """Counts the FLOPs of every training batch from its shapes (benchmarks/flops.py), by a forward pre-hook on the
    model between on_train_begin and on_train_end."""
    import torch
    from flops import flop_model, step_flops
    from transformers import TrainerCallback

    class FlopCallback(TrainerCallback):
        def __init__(self) -> None:
            self.model_flops = self.computed_flops = 0.0
            self.tokens = self.positions = 0
            self.batch: dict[str, Any] | None = None
            self.handle: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            counts = flop_model(model)

            # Outside torch.compile's graph (train.torch_compile): traced, the counting would break the graph.
            @torch.compiler.disable  # type: ignore[misc]
            def hook(module: Any, positional: Any, batch: dict[str, Any]) -> None:
                if not module.training:
                    return
                real, computed = step_flops(counts, batch)
                self.model_flops += real
                self.computed_flops += computed
                mask = batch.get("attention_mask")
                self.tokens += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
                self.positions += batch["input_ids"].numel()
                if self.batch is None:
                    self.batch = {key: value.clone() for key, value in batch.items() if hasattr(value, "clone")}

            self.handle = model.register_forward_pre_hook(hook, with_kwargs=True)
            self.counts = counts

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.handle.remove()

    return FlopCallback()


def train_worker(family: str, models: str, steps: int, data: dict[str, str], check: bool = False) -> dict[str, Any]:
    """Train `steps` steps, counting FLOPs per batch; with `check`, afterwards (outside the timed part) count the first
    batch again with torch.utils.flop_counter on a freshly loaded model."""
    import torch

    from finetune.training.run import run

    callback = flop_callback()
    with tempfile.TemporaryDirectory() as output:
        recipe = _recipe(family, models, steps, data, output)
        metrics = run(recipe, callbacks=[callback]).metrics
    result = {"seconds": metrics["train_runtime"], "samples_per_second": metrics["train_samples_per_second"],
              "model_flops": callback.model_flops, "computed_flops": callback.computed_flops,
              "tokens": callback.tokens, "positions": callback.positions, "threads": torch.get_num_threads(),
              "counts": callback.counts.summary()}
    if check:
        from flops import counted_flops, step_flops
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

        if family == "classification":
            model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2)
        else:
            loader = AutoModelForSeq2SeqLM if family == "summarization" else AutoModelForCausalLM
            model = loader.from_pretrained(f"{models}/{'t5' if family == 'summarization' else 'gpt2'}")
        batch = callback.batch
        result.update(formula=step_flops(callback.counts, batch)[1], counted=counted_flops(model, batch))
    return result


def peak_worker(shapes: list[list[int]]) -> dict[str, Any]:
    import torch
    from flops import matmul_peak

    return {"threads": torch.get_num_threads(),
            **{dtype: matmul_peak([tuple(shape) for shape in shapes], dtype) for dtype in ("float32", "bfloat16")}}


# ---- profiling ----------------------------------------------------------------------------------------------------

PROFILED_STEPS = 4


def profile_worker(family: str, models: str, steps: int, data: dict[str, str]) -> dict[str, Any]:
    """torch.profiler (CPU) over PROFILED_STEPS training steps after 2 warm-up steps: where a step's time goes."""
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule
    from transformers import TrainerCallback

    from finetune.training.run import run

    class ProfileCallback(TrainerCallback):
        def __init__(self) -> None:
            self.profiler = profile(activities=[ProfilerActivity.CPU],
                                    schedule=schedule(wait=1, warmup=1, active=PROFILED_STEPS, repeat=1))

        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            self.profiler.start()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.profiler.step()

        def on_train_end(self, *args: Any, **kwargs: Any) -> None:
            self.profiler.stop()

    callback = ProfileCallback()
    with tempfile.TemporaryDirectory() as output:
        run(_recipe(family, models, PROFILED_STEPS + 3, data, output), callbacks=[callback])
    events = callback.profiler.key_averages()
    step_us = sum(event.cpu_time_total for event in events if event.key.startswith("ProfilerStep"))

    def share(*keys: str, self_time: bool = False) -> float:
        total = sum((event.self_cpu_time_total if self_time else event.cpu_time_total)
                    for event in events if any(event.key.startswith(key) for key in keys))
        return total / step_us if step_us else float("nan")

    top = sorted((event for event in events if not event.key.startswith("ProfilerStep")),
                 key=lambda event: event.self_cpu_time_total, reverse=True)[:10]
    return {
        "step_ms": step_us / PROFILED_STEPS / 1000,
        "matmul": share("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", self_time=True),
        "attention": share("aten::_scaled_dot_product_flash_attention_for_cpu",
                           "aten::_scaled_dot_product_flash_attention_for_cpu_backward", self_time=True),
        "data": share("enumerate(DataLoader)"),
        "optimizer": share("Optimizer.step"),
        "zero_grad": share("Optimizer.zero_grad"),
        "threads": torch.get_num_threads(),
        "top": [[event.key, event.self_cpu_time_total / step_us, event.count // PROFILED_STEPS] for event in top],
    }


# ---- main ---------------------------------------------------------------------------------------------------------

SHAPES = {"classification": (32 * 32, 384, 1536), "summarization": (8 * 128, 512, 2048),
          "causal-lm": (8 * 128, 768, 3072)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 steps per family, one round")
    parser.add_argument("--profile", action="store_true", help="also profile a few steps of each family")
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args()
    families = args.families.split(",")
    steps, rounds = (8, 1) if args.quick else (24, 2)
    data = {"glue": str(require_data("glue", "SST-2").parent),
            "dialogsum": str(require_data("summarization", "dialogsum", "train.jsonl")),
            "shakespeare": str(require_data("lm", "tinyshakespeare", "input.txt"))}
    load = LoadTracker()
    with tempfile.TemporaryDirectory() as models:
        run_worker(__file__, "build", {"folder": models, "dialogsum": data["dialogsum"],
                                       "shakespeare": data["shakespeare"]})
        config = {"models": models, "steps": steps, "data": data}
        peaks: dict[str, list[dict[str, Any]]] = {family: [] for family in families}
        results: dict[str, list[dict[str, Any]]] = {family: [] for family in families}
        for round_ in range(rounds):  # interleaved: drift in the machine's load hits every family alike
            for family in families:
                tokens, width, inner = SHAPES[family]
                load.sample()
                peaks[family].append(run_worker(__file__, "peak", {"shapes": [
                    [tokens, width, width], [tokens, width, inner], [tokens, inner, width]]}).result or {})
                load.sample()
                results[family].append(run_worker(__file__, "train", {"family": family, "check": round_ == 0,
                                                                     **config}).result or {})
        profiles = {family: run_worker(__file__, "profile", {"family": family, **config}).result
                    for family in families} if args.profile else {}

    rows = []
    for family in families:
        runs = results[family]
        fp32 = median([peak["float32"]["peak"] for peak in peaks[family]])
        bf16 = median([peak["bfloat16"]["peak"] for peak in peaks[family]])
        achieved = median([r["model_flops"] / r["seconds"] for r in runs])
        computed = median([r["computed_flops"] / r["seconds"] for r in runs])
        first = runs[0]
        rows.append([family, first["counts"]["N_token"] / 1e6, first["model_flops"] / first["tokens"] / 1e9,
                     runs[0]["formula"] / runs[0]["counted"], median([r["samples_per_second"] for r in runs]),
                     achieved / 1e9, computed / 1e9, fp32 / 1e9, bf16 / 1e9, achieved / fp32, computed / fp32,
                     first["tokens"] / first["positions"]])
    table = markdown_table(
        ["family", "N_token (M)", "GFLOP per real token", "formula / counted", "train samples/s",
         "model GFLOP/s", "computed GFLOP/s", "fp32 matmul peak GFLOP/s", "bf16 matmul peak GFLOP/s", "MFU",
         "HW utilization (padded)", "real tokens / positions"], rows)
    notes = [load.note(), f"{steps} training steps per family and round, {rounds} round(s), torch threads: "
             f"{results[families[0]][0]['threads']}"]
    body = table
    for family, profile in profiles.items():
        if not profile:
            continue
        body += (f"\n\nProfile, {family}: {profile['step_ms']:.0f} ms per step; matrix products (self time) "
                 f"{profile['matmul']:.0%}, CPU attention kernels {profile['attention']:.0%}, data loading "
                 f"{profile['data']:.1%}, optimizer step {profile['optimizer']:.1%}, zero_grad "
                 f"{profile['zero_grad']:.1%}\n\n")
        body += markdown_table(["op (top 10 by self CPU time)", "share of step", "calls per step"], profile["top"])
    append_results(f"Distance to the limit: MFU per task family ({'quick' if args.quick else 'full'})", body, notes)


if __name__ == "__main__":
    if not worker_main({"build": build_worker, "peak": peak_worker, "train": train_worker,
                        "profile": profile_worker}):
        main()
