"""Chat tokenization: the cost of finding assistant tokens, and how much padding chat batches compute.

    python benchmarks/chat_masks.py            # all 2,344 HH-RLHF helpful-base dialogues, 3 rounds
    python benchmarks/chat_masks.py --quick    # the first 600, 2 rounds

The same dialogues (`chat/hh-rlhf-helpful-base/test_messages.jsonl`) are encoded three ways, interleaved, in one
process (the median of the rounds is reported):

- baseline: render with the chat template and tokenize (`apply_chat_template(tokenize=True)`), no masks;
- finetune with `{% generation %}` blocks (the default ChatML template): transformers' assistant masks;
- finetune by rendering turn prefixes (the same template without the blocks): one render per assistant turn more.

Then the training order: padding efficiency (real tokens / positions computed, batches of 8 at max_length 1024) of
random batches against finetune's length-grouped ones. The tokenizer is a byte-level BPE trained on the dialogues
(no pretrained tokenizer offline), with finetune's default template.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LoadTracker, append_results, markdown_table, require_data

MAX_LENGTH = 1024
BATCH_SIZE = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    import torch

    from finetune.data.sampling import length_grouped_indices, padding_efficiency
    from finetune.models.tiny import train_byte_bpe_tokenizer
    from finetune.tasks.chat_template import (
        DEFAULT_CHAT_TEMPLATE,
        encode_conversation,
        encode_example,
        prepare_tokenizer,
    )

    source = require_data("chat", "hh-rlhf-helpful-base", "test_messages.jsonl")
    dialogues = [json.loads(line)["messages"] for line in source.read_text(encoding="utf-8").splitlines()]
    dialogues = dialogues[:600] if quick else dialogues
    tokenizer = train_byte_bpe_tokenizer([turn["content"] for dialogue in dialogues for turn in dialogue], 2000)
    prepare_tokenizer(tokenizer, None)
    without_tags = DEFAULT_CHAT_TEMPLATE.replace("{%- generation %}", "").replace("{%- endgeneration %}", "")

    def baseline() -> list[list[int]]:
        return [list(tokenizer.apply_chat_template(dialogue, tokenize=True, tokenizer_kwargs={"verbose": False})
                     ["input_ids"]) for dialogue in dialogues]

    def masks(template: str) -> list[list[int]]:
        tokenizer.chat_template = template
        return [encode_conversation(tokenizer, dialogue)[0] for dialogue in dialogues]

    variants = {"render + tokenize, no masks (baseline)": baseline,
                "finetune, {% generation %} masks (default template)": lambda: masks(DEFAULT_CHAT_TEMPLATE),
                "finetune, turn-prefix rendering (template without the blocks)": lambda: masks(without_tags)}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, list[list[int]]] = {}
    load = LoadTracker()
    for round_number in range(2 if quick else 3):
        names = list(variants)
        names = names[round_number % len(names):] + names[:round_number % len(names)]  # rotate the order
        for name in names:
            load.sample()
            start = time.perf_counter()
            outputs[name] = variants[name]()
            seconds[name].append(time.perf_counter() - start)
    base = statistics.median(seconds[next(iter(variants))])
    reference = outputs[next(iter(variants))]
    same = {name: sum(out == ref for out, ref in zip(outputs[name], reference)) for name in variants}
    rows = [[name, len(dialogues), statistics.median(times), len(dialogues) / statistics.median(times),
             f"{statistics.median(times) / base:.2f}x", f"{same[name]}/{len(dialogues)}"]
            for name, times in seconds.items()]
    table = markdown_table(["encoding", "dialogues", "seconds", "dialogues/s", "time vs baseline",
                            "same token ids"], rows)

    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    examples = [encode_example(tokenizer, dialogue, MAX_LENGTH) for dialogue in dialogues]
    lengths = [len(example[0]) for example in examples if example is not None]
    generator = torch.Generator().manual_seed(0)
    random_order = torch.randperm(len(lengths), generator=generator).tolist()
    grouped = length_grouped_indices(lengths, BATCH_SIZE, generator)
    efficiency = [["random order", padding_efficiency(lengths, random_order, BATCH_SIZE)],
                  ["length-grouped (finetune's default)", padding_efficiency(lengths, grouped, BATCH_SIZE)]]
    truncated = sum(1 for example in examples if example is not None and example[2])
    notes = [f"HH-RLHF helpful-base dialogues ({source.name}); byte-level BPE of 2,000 tokens trained on them; "
             f"median of {len(seconds[next(iter(variants))])} interleaved rounds in one process",
             f"at max_length {MAX_LENGTH}: {len(lengths)} of {len(dialogues)} dialogues kept, {truncated} lost their "
             f"earliest turns, {len(dialogues) - len(lengths)} dropped (last exchange alone longer)",
             load.note()]
    body = table + "\n\n" + markdown_table([f"training order (batches of {BATCH_SIZE})", "padding efficiency"],
                                           efficiency)
    append_results("Chat tokenization: assistant masks and padding", body, notes)


if __name__ == "__main__":
    main()
