"""benchmarks/flops.py, which the MFU figures in benchmarks/RESULTS.md rest on: its formula counts exactly the FLOPs
torch's own counter sees in a forward+backward pass, for an encoder classifier, an encoder-decoder and a decoder-only
model, padded batches included."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

torch = pytest.importorskip("torch")


def _padded(batch: dict, rows: int, width: int) -> dict:
    mask = torch.ones(rows, width, dtype=torch.long)
    mask[0, width // 2:] = 0  # one row half padding
    return {**batch, "attention_mask": mask}


def _check(model, batch) -> None:
    from flops import counted_flops, flop_model, step_flops

    real, computed = step_flops(flop_model(model), batch)
    assert computed == counted_flops(model, batch)
    assert real < computed  # padding is computed but is no model work


def test_encoder_classifier():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64, num_labels=3))
    batch = _padded({"input_ids": torch.randint(0, 100, (3, 12)), "labels": torch.tensor([0, 1, 2])}, 3, 12)
    _check(model, batch)


def test_encoder_decoder():
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                num_decoder_layers=3, num_heads=4, decoder_start_token_id=0))
    labels = torch.randint(1, 100, (2, 5))
    labels[1, 3:] = -100  # a shorter target
    batch = _padded({"input_ids": torch.randint(1, 100, (2, 9)), "labels": labels}, 2, 9)
    _check(model, batch)


def test_decoder_only():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=2))
    ids = torch.randint(0, 100, (2, 10))
    _check(model, _padded({"input_ids": ids, "labels": ids}, 2, 10))
