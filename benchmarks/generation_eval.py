"""Generation evaluation: `finetune evaluate` on seq2seq and causal models against generating one example at a time.

    python benchmarks/generation_eval.py            # all 1,014 Multi30k val sentences, per model (~8 min, 2 cores)
    python benchmarks/generation_eval.py --quick    # the first 64

No pretrained generative model can be loaded offline here, so both models are random but of a realistic shape for
CPU work (width 256, 4 layers; T5: 4 encoder + 4 decoder layers) with tokenizers trained on Multi30k (the
tokenizer builders of finetune.models.tiny). Data: the English-German pairs of Multi30k val, as a
source/target jsonl for the T5 model (scored as summarization: ROUGE, BLEU) and as a prompt/completion jsonl
(`"<English> =" -> " <German>"`) for the GPT-2 model. Greedy decoding, 32 new tokens at most.

Rows, each a fresh process:

- one at a time: plain transformers, `model.generate` on each example in turn (what a loop over a dataset does),
  then the same scores finetune computes (T5: ROUGE, BLEU, chrF; GPT-2: BLEU, ROUGE-L), with finetune's metric code;
- Seq2SeqTrainer.predict with predict_with_generate (T5 only): the Trainer's generation evaluation as
  run_summarization.py runs it (its default batch of 8, file order), then the same scores;
- `finetune evaluate --batch-size 1`: the toolkit's evaluation path, batching off;
- `finetune evaluate --batch-size 32`: its default path: batches sorted by length (longest first), left-padded
  prompts for the decoder-only model.

For the GPT-2 model, two more rows isolate generation: finetune.tasks.decoding.generate_continuations (what its
evaluation and `finetune predict` generate with: batches sorted by length, left-padded) with batch size 1 and 32,
on the same prompts, in one process.

Throughput counts the whole evaluation (generation, decoding, scoring, in a fresh process: the metric libraries'
import included), from the runtime finetune records in its results JSON and the loop's own clock. finetune does
more: it also computes the loss (teacher-forced passes) and writes the predictions. "same outputs" compares each
row's predictions with the one-at-a-time loop's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LoadTracker, append_results, markdown_table, measure, require_data, run_worker, worker_main

MAX_NEW_TOKENS = 32


# ---- inside the worker processes -----------------------------------------------------------------------------------


def build_worker(folder: str, texts: list[str]) -> dict[str, Any]:
    """Random T5 and GPT-2 models of a CPU-realistic size, with tokenizers trained on `texts`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    from finetune.models.tiny import train_byte_bpe_tokenizer, train_t5_tokenizer

    root = Path(folder)
    tokenizer = train_t5_tokenizer(texts, vocab_size=4000)
    config = T5Config(vocab_size=len(tokenizer), d_model=256, d_kv=64, d_ff=1024, num_layers=4, num_decoder_layers=4,
                      num_heads=4, dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(root / "t5")
    tokenizer.save_pretrained(root / "t5")
    tokenizer = train_byte_bpe_tokenizer(texts, vocab_size=4000)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=256, n_layer=4, n_head=4,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(root / "gpt2")
    tokenizer.save_pretrained(root / "gpt2")
    return {}


def generation_only_worker(model_dir: str, data_file: str, batch_size: int) -> dict[str, Any]:
    """finetune's decoder-only generation path with batching off and on, same prompts, same process."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune.config.schema import GenerationSection
    from finetune.tasks.decoding import encode_prompt, generate_continuations

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token  # as modeling.load_tokenizer does
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    rows = [json.loads(line) for line in Path(data_file).read_text(encoding="utf-8").splitlines()]
    prompts = [encode_prompt(tokenizer, row["prompt"], 128) for row in rows]
    settings = GenerationSection(max_new_tokens=MAX_NEW_TOKENS)
    generate_continuations(model, tokenizer, prompts[:4], settings, batch_size=4)  # warm-up, not timed
    timings, outputs = {}, {}
    for size in (1, batch_size):
        start = time.perf_counter()
        outputs[size] = generate_continuations(model, tokenizer, prompts, settings, batch_size=size)
        timings[size] = time.perf_counter() - start
    same = sum(a.strip() == b.strip() for a, b in zip(outputs[1], outputs[batch_size]))
    return {"examples": len(prompts), "seconds_1": timings[1], "seconds_batched": timings[batch_size], "same": same}


def one_at_a_time_worker(model_dir: str, kind: str, data_file: str) -> dict[str, Any]:
    """The baseline: a plain loop, one `generate` call per example."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = [json.loads(line) for line in Path(data_file).read_text(encoding="utf-8").splitlines()]
    if kind == "seq2seq":
        model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
        inputs = ["summarize: " + row["source"] for row in rows]  # the prefix finetune gives T5 for summaries
        references = [row["target"] for row in rows]
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        inputs = [row["prompt"] for row in rows]
        references = [row["completion"] for row in rows]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    predictions = []
    start = time.perf_counter()
    for text in inputs:
        encoded = tokenizer(text, return_tensors="pt", truncation=True, max_length=128)
        with torch.inference_mode():
            output = model.generate(**encoded, max_new_tokens=MAX_NEW_TOKENS, num_beams=1, do_sample=False,
                                    pad_token_id=pad)
        if kind == "causal":
            output = output[:, encoded["input_ids"].shape[1]:]
        predictions.append(tokenizer.decode(output[0], skip_special_tokens=True).strip())
    from finetune.tasks import metrics

    if kind == "seq2seq":
        scores = metrics.compute(("rouge", "bleu", "chrf"), predictions, references)
    else:
        scores = {**metrics.load("bleu").compute(predictions=predictions, references=references),
                  "rougeL": metrics.load("rouge").compute(predictions=predictions, references=references)["rougeL"]}
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "examples": len(inputs), "predictions": predictions, "scores": scores}


def trainer_predict_worker(model_dir: str, data_file: str) -> dict[str, Any]:
    """The Trainer's own generation evaluation, as run_summarization.py's --do_predict runs it:
    Seq2SeqTrainer.predict with predict_with_generate (and the loss), its default batch (8) in file order, then the
    scores finetune computes."""
    import numpy as np
    from datasets import Dataset
    from transformers import (
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir)
    rows = [json.loads(line) for line in Path(data_file).read_text(encoding="utf-8").splitlines()]
    start = time.perf_counter()

    def preprocess(batch: dict[str, list]) -> Any:  # run_summarization.py's, labels included (it predicts with them)
        inputs = tokenizer(batch["source"], max_length=128, truncation=True)
        inputs["labels"] = tokenizer(text_target=batch["target"], max_length=128, truncation=True)["input_ids"]
        return inputs

    dataset = Dataset.from_dict({"source": ["summarize: " + row["source"] for row in rows],
                                 "target": [row["target"] for row in rows]}).map(
        preprocess, batched=True, remove_columns=["source", "target"])
    with tempfile.TemporaryDirectory() as output:
        args = Seq2SeqTrainingArguments(output_dir=output, predict_with_generate=True, report_to=[], use_cpu=True,
                                        disable_tqdm=True)
        trainer = Seq2SeqTrainer(model=model, args=args, data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
                                 processing_class=tokenizer)
        output_ids = trainer.predict(dataset, max_new_tokens=MAX_NEW_TOKENS, num_beams=1, do_sample=False).predictions
    output_ids = np.where(output_ids != -100, output_ids, tokenizer.pad_token_id)
    predictions = [text.strip() for text in tokenizer.batch_decode(output_ids, skip_special_tokens=True)]
    from finetune.tasks import metrics

    scores = metrics.compute(("rouge", "bleu", "chrf"), predictions, [row["target"] for row in rows])
    return {"seconds": time.perf_counter() - start, "examples": len(rows), "predictions": predictions,
            "scores": scores}


# ---- the driver ----------------------------------------------------------------------------------------------------


def finetune_evaluate(model_dir: Path, data_file: Path, batch_size: int, output_dir: Path,
                      extra: list[str]) -> tuple[dict[str, Any], float]:
    finetune = Path(sys.executable).parent / "finetune"
    argv = [str(finetune), "--quiet", "evaluate", str(model_dir), "--dataset", str(data_file), "--batch-size",
            str(batch_size), "--output-dir", str(output_dir), "--set", f"generation.max_new_tokens={MAX_NEW_TOKENS}",
            *extra]
    measured = measure(argv).check(" ".join(argv))
    # The results JSON records runtime_seconds and examples_per_second per split (finetune/evaluation_run.py).
    seconds = examples = 0.0
    for path in output_dir.rglob("*.json"):
        for entry in _find_dicts(json.loads(path.read_text(encoding="utf-8"))):
            if entry.get("runtime_seconds") and entry.get("examples_per_second"):
                seconds += entry["runtime_seconds"]
                examples += entry["runtime_seconds"] * entry["examples_per_second"]
    predictions = []
    for path in sorted(output_dir.rglob("*.jsonl")):
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if records and "prediction" in records[0]:
            predictions = [str(record["prediction"]).strip() for record in records]
    return {"seconds": seconds, "examples": round(examples), "predictions": predictions}, measured.peak_mb


def _find_dicts(value: Any):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _find_dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _find_dicts(item)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 examples per model")
    parser.add_argument("--examples", type=int, help="Multi30k val sentences per model [all 1014; quick: 64]")
    parser.add_argument("--batch-size", type=int, default=32)
    options = parser.parse_args()
    count = options.examples or (64 if options.quick else 100_000)
    folder = require_data("translation", "multi30k")
    english = (folder / "val.en").read_text(encoding="utf-8").splitlines()[:count]
    german = (folder / "val.de").read_text(encoding="utf-8").splitlines()[:count]
    count = len(english)
    train_text = ((folder / "train.en").read_text(encoding="utf-8").splitlines()[:5000]
                  + (folder / "train.de").read_text(encoding="utf-8").splitlines()[:5000])
    load = LoadTracker()
    rows = []
    speedups = []
    generation_only = versus_trainer = trainer_speed = float("nan")
    with tempfile.TemporaryDirectory(prefix="finetune-generation-bench-") as scratch:
        root = Path(scratch)
        run_worker(__file__, "build", {"folder": str(root), "texts": train_text})
        files = {"seq2seq": root / "pairs.jsonl", "causal": root / "prompts.jsonl"}
        with files["seq2seq"].open("w", encoding="utf-8") as handle:
            for source, target in zip(english, german):
                handle.write(json.dumps({"source": source, "target": target}, ensure_ascii=False) + "\n")
        with files["causal"].open("w", encoding="utf-8") as handle:
            for source, target in zip(english, german):
                handle.write(json.dumps({"prompt": f"{source} =", "completion": f" {target}"}, ensure_ascii=False)
                             + "\n")
        models = {"seq2seq": ("T5 (random, d_model 256, 4+4 layers)", root / "t5", ["--set", "task=summarization"]),
                  "causal": ("GPT-2 (random, n_embd 256, 4 layers)", root / "gpt2", ["--set", "task=generation"])}
        for kind, (label, model_dir, extra) in models.items():
            load.sample()
            measured = run_worker(__file__, "one_at_a_time", {"model_dir": str(model_dir), "kind": kind,
                                                               "data_file": str(files[kind])})
            baseline = measured.result
            baseline_speed = baseline["examples"] / baseline["seconds"]
            rows.append([label, "one at a time (plain generate loop, then scores)", baseline["examples"],
                         f"{baseline['seconds']:.1f}", f"{baseline_speed:.1f}", "1.00x", "-",
                         f"{measured.peak_mb:.0f}"])
            if kind == "seq2seq":
                load.sample()
                measured = run_worker(__file__, "trainer_predict", {"model_dir": str(model_dir),
                                                                     "data_file": str(files[kind])})
                result = measured.result
                speed = result["examples"] / result["seconds"]
                same = sum(a == b for a, b in zip(result["predictions"], baseline["predictions"]))
                rows.append([label, "Seq2SeqTrainer.predict, predict_with_generate (batch 8, file order)",
                             result["examples"], f"{result['seconds']:.1f}", f"{speed:.1f}",
                             f"{speed / baseline_speed:.2f}x", f"{same}/{len(baseline['predictions'])}",
                             f"{measured.peak_mb:.0f}"])
                trainer_speed = speed
            for batch_size in (1, options.batch_size):
                load.sample()
                result, peak = finetune_evaluate(model_dir, files[kind], batch_size,
                                                 root / f"results-{kind}-{batch_size}", extra)
                speed = result["examples"] / result["seconds"] if result["seconds"] else float("nan")
                same = sum(a == b for a, b in zip(result["predictions"], baseline["predictions"]))
                rows.append([label, f"`finetune evaluate --batch-size {batch_size}`", result["examples"],
                             f"{result['seconds']:.1f}", f"{speed:.1f}", f"{speed / baseline_speed:.2f}x",
                             f"{same}/{len(baseline['predictions'])}", f"{peak:.0f}"])
                if batch_size != 1:
                    speedups.append((label, speed / baseline_speed))
                    if kind == "seq2seq":
                        versus_trainer = speed / trainer_speed
            if kind == "causal":
                load.sample()
                measured = run_worker(__file__, "generation_only", {"model_dir": str(model_dir),
                                                                     "data_file": str(files[kind]),
                                                                     "batch_size": options.batch_size})
                timing = measured.result
                single = timing["examples"] / timing["seconds_1"]
                for batch_size, seconds in ((1, timing["seconds_1"]), (options.batch_size, timing["seconds_batched"])):
                    rows.append([label, f"generation alone: generate_continuations, batch size {batch_size}",
                                 timing["examples"], f"{seconds:.1f}", f"{timing['examples'] / seconds:.1f}",
                                 f"{timing['examples'] / seconds / single:.2f}x (vs batch size 1)",
                                 f"{timing['same']}/{timing['examples']}", f"{measured.peak_mb:.0f}"])
                generation_only = timing["seconds_1"] / timing["seconds_batched"]
    table = markdown_table(["model", "evaluation", "examples", "seconds", "examples/s", "vs one at a time",
                            "same outputs", "peak MB"], rows)
    notes = [f"Multi30k val, {count} en-de pairs (the first ones); greedy, at most {MAX_NEW_TOKENS} new tokens; "
             f"random weights (no pretrained generative model offline), so outputs run to the token limit unless EOS "
             f"comes up",
             "goal: batched generation evaluation at least 3x one at a time: "
             + ", ".join(f"{label.split(' (')[0]} {ratio:.2f}x" for label, ratio in speedups)
             + (" (met)" if speedups and all(ratio >= 3 for _, ratio in speedups) else " (missed)")
             + f"; GPT-2 generation alone {generation_only:.2f}x; T5 batched against the Trainer's "
             f"predict_with_generate: {versus_trainer:.2f}x",
             load.note()]
    append_results("Generation evaluation: batched vs one example at a time", table, notes)


if __name__ == "__main__":
    if not worker_main({"build": build_worker, "one_at_a_time": one_at_a_time_worker,
                        "trainer_predict": trainer_predict_worker,
                        "generation_only": generation_only_worker}):
        main()
