"""Tiny random models and tokenizers built offline, for the test suite: they live in the package (finetune smoke and
finetune tiny-model use them too) and are re-exported here under the names the tests know."""

from __future__ import annotations

from finetune.models.tiny import (  # noqa: F401  (re-exported)
    build_tiny_bart,
    build_tiny_bert,
    build_tiny_gpt2,
    build_tiny_llama,
    build_tiny_roberta,
    build_tiny_t5,
    train_bart_tokenizer,
    train_byte_bpe_tokenizer,
    train_roberta_tokenizer,
    train_t5_tokenizer,
    train_wordpiece_tokenizer,
)
