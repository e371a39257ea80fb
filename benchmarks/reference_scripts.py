"""Every generative task family against the script its users run today: same model, data, steps, batch size,
learning rate and seed; every run a fresh process, the variants interleaved, their order rotating each round.

    python benchmarks/reference_scripts.py            # 2 rounds, all five families (~30 min on one core)
    python benchmarks/reference_scripts.py --quick    # 1 round, fewer steps
    python benchmarks/reference_scripts.py --families summarization,translation --rounds 3

The reference side is a plain Trainer fed the way each script feeds it (transformers' example scripts at 5.x, their
defaults; only the model, data files, steps and seed are set):

- summarization, DialogSum: run_summarization.py: `"summarize: "` + dialogue (T5), sources truncated at
  max_source_length 1024, targets at max_target_length 128, no padding at tokenization, DataCollatorForSeq2Seq
  (pads each batch to its longest, labels with -100), Seq2SeqTrainer, random order;
- translation, Multi30k en-de: run_translation.py, the same with `"translate English to German: "`;
- causal LM text, tinyshakespeare: run_clm.py: the text loader (one example per line, line breaks kept), tokenized
  line by line, concatenated per map batch of 1,000 lines and cut into blocks (the remainder of each batch
  dropped), default_data_collator;
- prompt/completion, GSM8K (question -> answer) and chat, HH-RLHF helpful-base: the common fine-tuning script that
  pads every example to max_length (512) with labels -100 on the padding (and, for prompt/completion, on the prompt),
  default_data_collator, random order. No example script covers these; this is what the Alpaca-style scripts do.

finetune's side is `finetune.training.run.run(recipe)` (the code path of the CLI) with its defaults for everything
that is not set above: length-grouped batches, dynamic padding, packed text blocks. Both sides train the same
random-init models (no pretrained generative model offline): a T5 (d_model 256, 4+4 layers, ff 1024) and a GPT-2
(n_embd 256, 4 layers), with tokenizers trained on the data here (8,192 pieces). Throughput: training samples/s
from the Trainer's train_runtime (data preparation excluded, counted in the process's wall time); padding efficiency:
real tokens / positions computed in the training forward passes (seq2seq: sources / targets).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
from itertools import chain
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LoadTracker, append_results, markdown_table, median, require_data, run_worker, worker_main

VOCAB = 8192
BATCH = 8
LEARNING_RATE = 5e-5  # the Trainer's default, which the scripts keep
SEQ2SEQ = {"max_source": 1024, "max_target": 128}  # run_summarization.py / run_translation.py defaults
BLOCK = 256  # causal LM text blocks, both sides (run_clm.py --block_size)
PAD_TO = 512  # prompt/completion and chat: max_length, both sides
FAMILIES = {  # family: (steps per run, quick steps, reference label, goal: finetune / reference at least)
    "summarization": (24, 8, "run_summarization.py defaults", 2.0),
    "translation": (60, 20, "run_translation.py defaults", 2.0),
    "text": (30, 10, "run_clm.py (group_texts)", 1.0),
    "prompt_completion": (30, 10, "padding to max_length 512", 1.5),
    "chat": (30, 10, "padding to max_length 512", 1.5),
}
PREFIXES = {"summarization": "summarize: ", "translation": "translate English to German: "}


# ---- data and models --------------------------------------------------------------------------------------------


def data_files() -> dict[str, Path]:
    return {"dialogsum": require_data("summarization", "dialogsum"),
            "multi30k": require_data("translation", "multi30k"),
            "shakespeare": require_data("lm", "tinyshakespeare") / "input.txt",
            "gsm8k": require_data("chat", "gsm8k") / "train.jsonl",
            "hh": require_data("chat", "hh-rlhf-helpful-base") / "test_messages.jsonl"}


def _jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        rows = []
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
            if limit and len(rows) >= limit:
                break
    return rows


def seq2seq_pairs(family: str, files: dict[str, str], count: int) -> tuple[list[str], list[str]]:
    """Sources (without prefix) and targets: DialogSum dialogues and summaries, Multi30k English and German."""
    if family == "summarization":
        rows = _jsonl(Path(files["dialogsum"]) / "train.jsonl", count)
        return [row["dialogue"] for row in rows], [row["summary"] for row in rows]
    folder = Path(files["multi30k"])
    english = (folder / "train.en").read_text(encoding="utf-8").splitlines()[:count]
    german = (folder / "train.de").read_text(encoding="utf-8").splitlines()[:count]
    return english, german


def build_worker(folder: str, files: dict[str, str]) -> dict[str, Any]:
    """The random T5 and GPT-2 models, tokenizers trained on the data; the GPT-2 one has ChatML (finetune's default
    template) as its own chat template, so both sides render conversations the same way."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    from finetune.models.tiny import train_byte_bpe_tokenizer, train_t5_tokenizer
    from finetune.tasks.chat_template import DEFAULT_CHAT_TEMPLATE, DEFAULT_SPECIAL_TOKENS

    texts = [*chain(*seq2seq_pairs("summarization", files, 4000)), *chain(*seq2seq_pairs("translation", files, 4000))]
    tokenizer = train_t5_tokenizer(texts, VOCAB)
    config = T5Config(vocab_size=len(tokenizer), d_model=256, d_kv=64, d_ff=1024, num_layers=4, num_decoder_layers=4,
                      num_heads=4, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)  # type: ignore[call-arg]
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(Path(folder) / "t5")
    tokenizer.save_pretrained(Path(folder) / "t5")

    lines = Path(files["shakespeare"]).read_text(encoding="utf-8").splitlines()
    gsm8k = [row["question"] + " " + row["answer"] for row in _jsonl(Path(files["gsm8k"]), 3000)]
    chats = [turn["content"] for row in _jsonl(Path(files["hh"]), 3000) for turn in row["messages"]]
    tokenizer = train_byte_bpe_tokenizer([*lines, *gsm8k, *chats], VOCAB)
    tokenizer.add_special_tokens({"additional_special_tokens": list(DEFAULT_SPECIAL_TOKENS)})
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    gpt2 = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=256, n_layer=4, n_head=4,
                      bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(gpt2).save_pretrained(Path(folder) / "gpt2")
    tokenizer.save_pretrained(Path(folder) / "gpt2")
    return {}


# ---- inside the worker processes ---------------------------------------------------------------------------------


def token_counter() -> Any:
    """A callback counting real tokens and computed positions of every training forward pass (inputs, and decoder
    labels for seq2seq models), by a forward pre-hook between on_train_begin and on_train_end."""
    from transformers import TrainerCallback

    class TokenCounter(TrainerCallback):
        def __init__(self) -> None:
            self.counts = {"real": 0, "computed": 0, "target_real": 0, "target_computed": 0}
            self.handle: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            def hook(module: Any, positional: Any, batch: dict[str, Any]) -> None:
                if not module.training:
                    return
                ids, mask = batch["input_ids"], batch.get("attention_mask")
                self.counts["computed"] += int(ids.numel())
                self.counts["real"] += int(mask.sum()) if mask is not None else int(ids.numel())
                labels = batch.get("labels")
                if labels is not None and model.config.is_encoder_decoder:
                    self.counts["target_computed"] += int(labels.numel())
                    self.counts["target_real"] += int((labels != -100).sum())

            self.handle = model.register_forward_pre_hook(hook, with_kwargs=True)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.handle.remove()

    return TokenCounter()


def _result(metrics: dict[str, Any], counter: Any) -> dict[str, Any]:
    counts = counter.counts
    efficiency = f"{counts['real'] / max(counts['computed'], 1):.3f}"
    if counts["target_computed"]:  # seq2seq: sources / targets (decoder labels)
        efficiency += f" / {counts['target_real'] / counts['target_computed']:.3f}"
    return {"samples_per_second": metrics["train_samples_per_second"], "seconds": metrics["train_runtime"],
            "loss": metrics.get("train_loss"), "efficiency": efficiency}


def finetune_worker(family: str, models: str, files: dict[str, str], steps: int, seed: int) -> dict[str, Any]:
    import os

    os.environ["FINETUNE_VERBOSITY"] = "quiet"
    from finetune.config.loading import load_recipe
    from finetune.training.run import run

    common = [f"train.max_steps={steps}", f"train.batch_size={BATCH}", f"train.learning_rate={LEARNING_RATE}",
              f"train.seed={seed}", "train.eval_strategy=no", "train.use_cpu=true", f"train.logging_steps={steps}",
              "data.max_eval_samples=8", "generation.max_new_tokens=4"]
    if family in PREFIXES:
        task, model = family, f"{models}/t5"
        lengths = [f"data.max_length={SEQ2SEQ['max_source']}", f"data.max_target_length={SEQ2SEQ['max_target']}",
                   f"data.max_train_samples={BATCH * steps}"]  # the T5 prefix: finetune's default, as PREFIXES
        if family == "summarization":
            source = Path(files["dialogsum"])
            specific = [f"data.train_file={source / 'train.jsonl'}",
                        f"data.validation_file={source / 'validation.jsonl'}", "data.source_column=dialogue",
                        "data.target_column=summary", *lengths]
        else:
            source = Path(files["multi30k"])
            specific = [f"data.train_file={source / 'train'}", f"data.validation_file={source / 'val'}",
                        "data.source_lang=en", "data.target_lang=de", *lengths]
    else:
        task, model = "generation", f"{models}/gpt2"
        if family == "text":
            specific = [f"data.train_file={files['shakespeare']}", "data.format=text", f"data.block_size={BLOCK}",
                        f"data.max_length={BLOCK}"]
        elif family == "prompt_completion":
            specific = [f"data.train_file={files['gsm8k']}", "data.format=prompt_completion",
                        "data.prompt_column=question", "data.completion_column=answer", f"data.max_length={PAD_TO}",
                        f"data.max_train_samples={BATCH * steps}"]
        else:
            specific = [f"data.train_file={files['hh']}", "data.format=chat", f"data.max_length={PAD_TO}",
                        f"data.max_train_samples={BATCH * steps}"]
    counter = token_counter()
    with tempfile.TemporaryDirectory() as output:
        recipe = load_recipe(base={"task": task}, overrides=[*common, f"model.name={model}", *specific,
                                                             f"output_dir={output}/run"])
        metrics = run(recipe, callbacks=[counter]).metrics
    return _result(metrics, counter)


def reference_worker(family: str, models: str, files: dict[str, str], steps: int, seed: int) -> dict[str, Any]:
    from datasets import Dataset, load_dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    count = BATCH * steps
    with tempfile.TemporaryDirectory() as output:
        settings = {"output_dir": output, "per_device_train_batch_size": BATCH, "learning_rate": LEARNING_RATE,
                    "max_steps": steps, "seed": seed, "save_strategy": "no", "report_to": [], "use_cpu": True,
                    "logging_steps": steps, "disable_tqdm": True}
        counter = token_counter()
        if family in PREFIXES:
            tokenizer = AutoTokenizer.from_pretrained(f"{models}/t5")
            model = AutoModelForSeq2SeqLM.from_pretrained(f"{models}/t5")
            sources, targets = seq2seq_pairs(family, files, count)

            def preprocess(batch: dict[str, list]) -> Any:  # run_summarization.py's preprocess_function
                inputs = tokenizer([PREFIXES[family] + text for text in batch["source"]],
                                   max_length=SEQ2SEQ["max_source"], padding=False, truncation=True)
                labels = tokenizer(text_target=batch["target"], max_length=SEQ2SEQ["max_target"], padding=False,
                                   truncation=True)
                inputs["labels"] = labels["input_ids"]
                return inputs

            train = Dataset.from_dict({"source": sources, "target": targets}).map(
                preprocess, batched=True, remove_columns=["source", "target"])
            collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
            trainer: Any = Seq2SeqTrainer(model=model, args=Seq2SeqTrainingArguments(**settings), train_dataset=train,
                                          data_collator=collator, processing_class=tokenizer, callbacks=[counter])
        else:
            tokenizer = AutoTokenizer.from_pretrained(f"{models}/gpt2")
            model = AutoModelForCausalLM.from_pretrained(f"{models}/gpt2")
            if family == "text":
                train = run_clm_blocks(load_dataset("text", data_files={"train": files["shakespeare"]},
                                                    keep_linebreaks=True)["train"], tokenizer)
            else:
                train = Dataset.from_list(padded_examples(family, files, count, tokenizer))
            trainer = Trainer(model=model, args=TrainingArguments(**settings), train_dataset=train,
                              data_collator=default_data_collator, processing_class=tokenizer, callbacks=[counter])
        metrics = trainer.train().metrics
    return _result(metrics, counter)


def run_clm_blocks(raw: Any, tokenizer: Any) -> Any:
    """run_clm.py's tokenize_function and group_texts (map batches of 1,000 lines, each batch's remainder dropped)."""

    def group_texts(examples: dict[str, list]) -> dict[str, list]:
        concatenated = {key: list(chain(*examples[key])) for key in examples}
        total = (len(concatenated["input_ids"]) // BLOCK) * BLOCK
        result = {key: [values[i:i + BLOCK] for i in range(0, total, BLOCK)] for key, values in concatenated.items()}
        result["labels"] = result["input_ids"].copy()
        return result

    tokenized = raw.map(lambda batch: tokenizer(batch["text"]), batched=True, remove_columns=["text"])
    return tokenized.map(group_texts, batched=True)


def padded_examples(family: str, files: dict[str, str], count: int, tokenizer: Any) -> list[dict[str, list[int]]]:
    """Prompt + completion + EOS (labels -100 on the prompt) or the rendered conversation, every one padded to
    PAD_TO; padding masked out of attention and labels."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = []
    if family == "prompt_completion":
        for row in _jsonl(Path(files["gsm8k"]), count):
            prompt = tokenizer(row["question"])["input_ids"]
            completion = [*tokenizer(row["answer"])["input_ids"], tokenizer.eos_token_id]
            ids = (prompt + completion)[:PAD_TO]
            labels = ([-100] * len(prompt) + completion)[:PAD_TO]
            examples.append((ids, labels))
    else:
        for row in _jsonl(Path(files["hh"]), count):
            ids = list(tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"])
            ids = ids[:PAD_TO]
            examples.append((ids, list(ids)))
    rows = []
    for ids, labels in examples:
        padding = PAD_TO - len(ids)
        rows.append({"input_ids": ids + [pad] * padding, "attention_mask": [1] * len(ids) + [0] * padding,
                     "labels": labels + [-100] * padding})
    return rows


# ---- the driver ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, fewer steps per run")
    parser.add_argument("--rounds", type=int, help="interleaved rounds [2; quick: 1]")
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"subset of {','.join(FAMILIES)}")
    options = parser.parse_args()
    families = [name.strip() for name in options.families.split(",") if name.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families: {', '.join(unknown)} (choose from {', '.join(FAMILIES)})")
    rounds = options.rounds or (1 if options.quick else 2)
    files = {name: str(path) for name, path in data_files().items()}
    load = LoadTracker()
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    walls: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="finetune-reference-bench-") as models:
        run_worker(__file__, "build", {"folder": models, "files": files})
        for round_index in range(rounds):
            for family in families:
                steps = FAMILIES[family][1 if options.quick else 0]
                variants = ["finetune", "reference"]
                if round_index % 2:
                    variants.reverse()
                for variant in variants:
                    load.sample()
                    measured = run_worker(__file__, variant, {"family": family, "models": models, "files": files,
                                                              "steps": steps, "seed": 42 + round_index})
                    results.setdefault((family, variant), []).append(measured.result or {})
                    walls.setdefault((family, variant), []).append(measured.seconds)
    rows, verdicts = [], []
    for family in families:
        steps, quick_steps, reference_label, goal = FAMILIES[family]
        speed = {variant: median([run["samples_per_second"] for run in results[(family, variant)]])
                 for variant in ("finetune", "reference")}
        ratio = speed["finetune"] / speed["reference"]
        verdicts.append(f"{family} {ratio:.2f}x (goal >= {goal}: {'met' if ratio >= goal else 'missed'})")
        for variant, label in (("reference", reference_label), ("finetune", "finetune (defaults)")):
            runs = results[(family, variant)]
            rows.append([family, label, quick_steps if options.quick else steps, f"{speed[variant]:.1f}",
                         f"{speed[variant] / speed['reference']:.2f}x",
                         runs[0]["efficiency"],  # the first round's (the same examples every round)
                         f"{median([run['seconds'] for run in runs]):.1f}",
                         f"{median(walls[(family, variant)]):.1f}",
                         f"{median([run['loss'] for run in runs if run.get('loss') is not None]):.3f}"])
    table = markdown_table(["family", "variant", "steps", "train samples/s", "vs reference", "padding efficiency",
                            "train s", "process s", "train loss"], rows)
    notes = [f"batch {BATCH}, learning rate {LEARNING_RATE}, seeds 42..{41 + rounds} (one per round), {rounds} "
             f"interleaved round(s), medians; random-init T5 (d_model 256, 4+4 layers) and GPT-2 (n_embd 256, "
             f"4 layers), tokenizers of {VOCAB} pieces trained on the data",
             f"seq2seq: sources up to {SEQ2SEQ['max_source']} tokens, targets up to {SEQ2SEQ['max_target']}; "
             f"text: blocks of {BLOCK} tokens; prompt/completion and chat: max_length {PAD_TO}",
             "train loss: the mean over the run's steps; the two sides see the same examples in another order "
             "(and text mode other block boundaries), so losses agree only roughly",
             "goals (finetune / reference training samples/s): " + "; ".join(verdicts),
             load.note()]
    append_results("Every family against its reference script: training throughput", table, notes)
    print(table)


if __name__ == "__main__":
    if not worker_main({"build": build_worker, "finetune": finetune_worker, "reference": reference_worker}):
        main()
