"""Tiny random models with tokenizers trained on given text, built offline: `finetune smoke`, `finetune tiny-model`
and the test suite use them.

A 2-layer, width-32 model with a tokenizer trained on the given text by the `tokenizers` library: seconds to
build and to train on a CPU, yet the same classes and files as a real checkpoint, so every command can be tried
without the Hub. transformers and tokenizers are imported inside the functions (the CLI starts without torch).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# ---- encoder-only models (classification) ------------------------------------------------------------------------

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int = 400):
    """A BERT-style WordPiece tokenizer ([CLS] a [SEP] b [SEP]) learned from `texts`, as a transformers tokenizer.

    The vocabulary is built here rather than by tokenizers' WordPieceTrainer, whose choice among equally frequent
    pieces changes from process to process (Rust hash maps): the same texts must give the same tiny model, or a
    test's numbers move between runs. Every character, alone and as a ##continuation, then the most frequent words
    (ties alphabetical): any word tokenizes, frequent ones in one piece."""
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(word for text in texts
                    for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    characters = sorted({character for word in words for character in word})
    vocabulary = list(dict.fromkeys([*SPECIAL_TOKENS, *characters, *(f"##{c}" for c in characters)]))
    ranked = sorted((word for word in words if len(word) > 1), key=lambda word: (-words[word], word))
    vocabulary += ranked[:max(vocab_size - len(vocabulary), 0)]
    tokenizer = Tokenizer(models.WordPiece({token: index for index, token in enumerate(vocabulary)},
                                           unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=512,
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def build_tiny_bert(path: Path, texts: Iterable[str], seed: int = 0, vocab_size: int = 400) -> Path:
    """Save a tiny random BERT (encoder only) and its tokenizer to `path`; returns `path`."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = train_wordpiece_tokenizer(texts, vocab_size)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def train_roberta_tokenizer(texts: Iterable[str], vocab_size: int = 1000):
    """A RoBERTa-style byte-level BPE tokenizer (`<s> a </s></s> b </s>`), saved like roberta-base's: without
    `add_prefix_space`, so a word tokenizes differently at the start of a text than after a space.

    Built, not trained, so the same texts always give the same files: the 256 byte symbols, then the most frequent
    words (ties alphabetical) in their after-a-space form (`Ġparis`), each spelled by a chain of merges. Merges of
    space-led pieces only, so a word at the very start of a text (no space before it) falls apart into bytes, as
    rare words do in the real vocabulary."""
    from collections import Counter

    from tokenizers import pre_tokenizers
    from transformers import RobertaTokenizer

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=True)
    words = Counter(piece for text in texts for piece, _ in byte_level.pre_tokenize_str(text))
    vocabulary = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", *sorted(pre_tokenizers.ByteLevel.alphabet())]
    known = set(vocabulary)
    merges: list[tuple[str, str]] = []
    for word in sorted((word for word in words if word.startswith("Ġ") and len(word) > 2),
                       key=lambda word: (-words[word], word)):
        pieces = [word[:end] for end in range(2, len(word) + 1) if word[:end] not in known]
        if len(vocabulary) + len(pieces) > vocab_size:
            break
        for piece in pieces:
            merges.append((piece[:-1], piece[-1]))
            vocabulary.append(piece)
            known.add(piece)
    # merges as (left, right) pairs, which tokenizers' BPE takes (the annotation says strings, which it refuses).
    return RobertaTokenizer(vocab={token: index for index, token in enumerate(vocabulary)},
                            merges=merges,  # type: ignore[arg-type]
                            add_prefix_space=False, model_max_length=512)


def build_tiny_roberta(path: Path, texts: Iterable[str], seed: int = 0, vocab_size: int = 1000) -> Path:
    """Save a tiny random RoBERTa (encoder only, byte-level BPE tokenizer) to `path`; returns `path`."""
    import torch
    from transformers import RobertaConfig, RobertaModel

    tokenizer = train_roberta_tokenizer(texts, vocab_size)
    # RoBERTa numbers positions from pad_token_id + 1: two more position embeddings than the longest input.
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=514, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    RobertaModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# ---- encoder-decoder models (summarization, translation) ---------------------------------------------------------


def train_t5_tokenizer(texts: Iterable[str], vocab_size: int = 600):
    """A T5-style tokenizer: SentencePiece-like BPE ('▁' marks word starts), `</s>` after every sequence.

    The Metaspace decoder turns '▁' back into spaces, so decode(skip_special_tokens=True) gives the text back.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2 as in T5
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                                                         show_progress=False))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=512,
                                   model_input_names=["input_ids", "attention_mask"])


def build_tiny_t5(path: Path, texts: Iterable[str], seed: int = 0, vocab_size: int = 600) -> Path:
    """Save a tiny random T5 (2+2 layers, width 32) and its tokenizer to `path`; returns `path`."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = train_t5_tokenizer(texts, vocab_size)
    # T5 starts decoding from the pad token; eos ends every sequence.
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                      num_heads=4, relative_attention_num_buckets=16, dropout_rate=0.0,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)  # type: ignore[call-arg]  # a generation
    # setting the typed T5Config does not declare; PretrainedConfig takes it and the model uses it.
    torch.manual_seed(seed)
    T5ForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def train_bart_tokenizer(texts: Iterable[str], vocab_size: int = 600):
    """A BART-style byte-level BPE tokenizer: `<s> text </s>`, with the special tokens BART expects."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0-4 as in BART (mask last in real BART)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))  # its bars print blank lines without a terminal
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", mask_token="<mask>", model_max_length=512,
                                   model_input_names=["input_ids", "attention_mask"])


def build_tiny_bart(path: Path, texts: Iterable[str], seed: int = 0, vocab_size: int = 600) -> Path:
    """Save a tiny random BART (2+2 layers, width 32) and its tokenizer to `path`; returns `path`."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    tokenizer = train_bart_tokenizer(texts, vocab_size)
    # BART starts decoding from eos and forces bos first, as the pretrained checkpoints do.
    config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                        decoder_ffn_dim=64, max_position_embeddings=512, dropout=0.0,
                        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
                        forced_bos_token_id=tokenizer.bos_token_id,  # type: ignore[call-arg]  # as for T5 above
                        forced_eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    BartForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# ---- decoder-only models (generation) ------------------------------------------------------------------------------


def train_byte_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 512, bos_token: str | None = None,
                             eos_token: str = "<|endoftext|>"):
    """A GPT-2 style byte-level BPE tokenizer: any text encodes (no unknown token) and decodes back unchanged.

    With `bos_token` it is added in front of every sequence, as Llama tokenizers do. No pad token, like GPT-2 and
    Llama: the toolkit has to cope with that (modeling.load_tokenizer pads with eos).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = [eos_token] if bos_token is None else [bos_token, eos_token]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))  # its bars print blank lines without a terminal
    if bos_token is not None:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A", pair=f"{bos_token} $A $B", special_tokens=[(bos_token, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos_token or eos_token, eos_token=eos_token,
                                   unk_token=None, model_max_length=512, clean_up_tokenization_spaces=False,
                                   model_input_names=["input_ids", "attention_mask"])


def build_tiny_gpt2(path: Path, texts: Iterable[str], seed: int = 0, vocab_size: int = 512) -> Path:
    """Save a tiny random GPT-2 (2 layers, width 32) and its byte-level BPE tokenizer to `path`; returns `path`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = train_byte_bpe_tokenizer(texts, vocab_size)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_llama(path: Path, texts: Iterable[str], seed: int = 0, vocab_size: int = 512) -> Path:
    """Save a tiny random Llama-style model (2 layers, width 32, grouped-query attention, RoPE, untied head) and a
    byte-level BPE tokenizer that adds `<s>` in front and ends documents with `</s>`; returns `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_byte_bpe_tokenizer(texts, vocab_size, bos_token="<s>", eos_token="</s>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=False)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
