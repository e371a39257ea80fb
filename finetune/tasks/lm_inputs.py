"""Model inputs for causal language models: documents from text lines, packed blocks, prompt/completion pairs
with masked labels, and the collator that pads them. Pure functions of token ids, so tests check them directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finetune.data.sources import LoadedData

IGNORE_INDEX = -100  # label value the loss skips (torch's CrossEntropyLoss default)
HOLDOUT_FRACTION = 0.05
logger = logging.getLogger("finetune")


def hold_out_tail(data: LoadedData, max_eval_samples: int | None) -> None:
    """Without validation data, the last 5% of the training rows (at least one, at most max_eval_samples) become
    the evaluation split: the tail, not a random sample, so neighbouring lines of a text do not leak between them."""
    assert data.train is not None
    count = len(data.train)
    if data.eval or count < 2:
        return
    held = max(1, round(count * HOLDOUT_FRACTION))
    if max_eval_samples:
        held = min(held, max_eval_samples)
    data.eval = {"validation": data.train.select(range(count - held, count))}
    data.train = data.train.select(range(count - held))
    logger.warning("No validation data given: evaluating on the last %d of %d training rows (held out, not "
                   "trained on). Pass --validation-file to choose.", held, count)


def lines_to_documents(lines: Iterable[str]) -> list[str]:
    """Rows of a line-based text file -> documents: runs of non-blank lines joined with newlines."""
    documents: list[str] = []
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line)
        elif current:
            documents.append("\n".join(current))
            current = []
    if current:
        documents.append("\n".join(current))
    return documents


def pack_blocks(sequences: Iterable[Sequence[int]], block_size: int, keep_remainder: bool = False) -> list[list[int]]:
    """Concatenate token sequences and cut the stream into blocks of exactly `block_size` tokens.

    The last `len(stream) % block_size` tokens are dropped, or kept as one shorter block with `keep_remainder`.
    The whole split is one stream (not per map batch, as in transformers' run_clm), so nothing else is lost.
    """
    import numpy as np

    arrays = [np.asarray(sequence, dtype=np.int64) for sequence in sequences]
    stream = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    full = len(stream) // block_size * block_size
    blocks = stream[:full].reshape(-1, block_size).tolist()
    if keep_remainder and full < len(stream):
        blocks.append(stream[full:].tolist())
    return blocks


class StreamPacker:
    """Text mode's packing, one batch of rows at a time (`datasets.map(batched=True, with_indices=True)`, which
    calls it on the batches in order): the tokens after a batch's last full block, and a document whose lines run
    on into the next batch, start the next batch's stream. The blocks are those of packing the whole split as one
    stream (`pack_blocks`), but memory holds one batch, not the split (a million lines: 2 GB as Python lists).

    `tokenize(texts)` gives each document's token ids; an EOS follows every document.
    """

    def __init__(self, tokenize: Callable[[list[str]], list[list[int]]], eos_token_id: int, block_size: int,
                 rows: int, line_based: bool, keep_remainder: bool) -> None:
        self.tokenize, self.eos_token_id, self.block_size = tokenize, eos_token_id, block_size
        self.rows, self.line_based, self.keep_remainder = rows, line_based, keep_remainder
        self.carry: list[int] = []  # tokens after the last full block
        self.pending: list[str] = []  # lines of a document not ended yet (line-based files)

    def __call__(self, values: list[Any], indices: list[int]) -> list[list[int]]:
        if indices and indices[0] == 0:  # a new pass over the split
            self.carry, self.pending = [], []
        last = not indices or indices[-1] == self.rows - 1
        texts = ["" if text is None else str(text) for text in values]
        if self.line_based:
            lines = self.pending + texts
            end = len(lines)
            if not last:  # the trailing run of non-blank lines may go on in the next batch
                while end and lines[end - 1].strip():
                    end -= 1
            documents, self.pending = lines_to_documents(lines[:end]), lines[end:]
        else:
            documents = [text for text in texts if text.strip()]
        import numpy as np

        pieces = [np.asarray(self.carry, dtype=np.int64)]
        for start in range(0, len(documents), 1000):
            for ids in self.tokenize(documents[start:start + 1000]):
                pieces += [np.asarray(ids, dtype=np.int64), np.asarray([self.eos_token_id], dtype=np.int64)]
        stream = np.concatenate(pieces)
        full = len(stream) // self.block_size * self.block_size
        blocks = stream[:full].reshape(-1, self.block_size).tolist()
        self.carry = stream[full:].tolist()
        if last and self.keep_remainder and self.carry:
            blocks.append(self.carry)
        return blocks


def prompt_completion_example(prompt_ids: Sequence[int], completion_ids: Sequence[int], eos_token_id: int,
                              max_length: int) -> dict[str, list[int]]:
    """Model inputs for one pair: prompt + completion + EOS, labels -100 on the prompt.

    Too long: the prompt loses tokens from its start (its end, next to the completion, matters most), down to half of
    `max_length`; then the completion is cut at its end.
    """
    completion = [*completion_ids, eos_token_id]
    prompt_room = max(max_length - len(completion), max_length // 2)
    prompt = list(prompt_ids[max(len(prompt_ids) - prompt_room, 0):])
    completion = completion[:max_length - len(prompt)]
    return {"input_ids": prompt + completion, "labels": [IGNORE_INDEX] * len(prompt) + completion}


@dataclass
class CausalLMCollator:
    """Right-pads a batch to its longest example; labels default to the inputs (text mode).

    Padding is masked by position (attention_mask 0, label -100), never by token id: GPT-2 pads with its EOS token,
    and the EOS that ends each document or completion must still be learned.
    """

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(feature["input_ids"]) for feature in features)
        input_ids, attention_mask, labels = [], [], []
        for feature in features:
            ids = list(feature["input_ids"])
            padding = width - len(ids)
            input_ids.append(ids + [self.pad_token_id] * padding)
            attention_mask.append([1] * len(ids) + [0] * padding)
            example_labels = list(feature.get("labels") or ids)
            # The first token is never predicted (the model shifts labels by one). Masking it keeps the Trainer's
            # token count, which divides the summed loss, equal to the number of predicted tokens: otherwise a
            # packed block's loss and perplexity come out low by a factor (tokens - 1) / tokens.
            example_labels[0] = IGNORE_INDEX
            labels.append(example_labels + [IGNORE_INDEX] * padding)
        return {"input_ids": torch.tensor(input_ids), "attention_mask": torch.tensor(attention_mask),
                "labels": torch.tensor(labels)}
