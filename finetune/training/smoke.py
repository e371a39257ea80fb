"""`finetune smoke`: prove the install works end to end with no network, in the spirit of `accelerate test`.

It writes a small labelled sentiment dataset, builds a tiny random BERT and its tokenizer offline, then goes
through the same code path as `finetune classify`: train, evaluate, save, reload and predict. It fails (exit 1)
when the model does not learn the task, which is easy enough that a working pipeline always does.
"""

from __future__ import annotations

import csv
import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

POSITIVE = ["good", "great", "wonderful", "gorgeous", "witty", "delightful", "moving", "brilliant", "fun", "superb"]
NEGATIVE = ["bad", "awful", "boring", "dull", "tedious", "clumsy", "bland", "terrible", "weak", "lifeless"]
FILLER = ["a", "the", "film", "movie", "story", "plot", "acting", "was", "is", "really", "quite", "very", "and",
          "script", "cast", "ending", "this", "that", "with", "its"]
REQUIRED_ACCURACY = 0.8


# ---- a tiny random BERT, built offline ---------------------------------------------------------------------------

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int = 400):
    """A BERT-style WordPiece tokenizer ([CLS] a [SEP] b [SEP]) trained on `texts`, as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size,
                                                                   special_tokens=SPECIAL_TOKENS))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=512,
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def build_tiny_bert(path: Path, texts: Iterable[str], seed: int = 0) -> Path:
    """Save a tiny random BERT (encoder only) and its tokenizer to `path`; returns `path`."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = train_wordpiece_tokenizer(texts)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_sentiment_rows(count: int, seed: int) -> list[dict[str, str]]:
    """Sentences of filler words around one or two sentiment words; the label is their polarity."""
    generator = random.Random(seed)
    rows = []
    for _ in range(count):
        positive = generator.random() < 0.5
        words = generator.sample(FILLER, k=generator.randint(3, 8))
        for _ in range(generator.randint(1, 2)):
            words.insert(generator.randrange(len(words) + 1), generator.choice(POSITIVE if positive else NEGATIVE))
        rows.append({"text": " ".join(words), "label": "positive" if positive else "negative"})
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_smoke(output_dir: Path | None = None, echo: Callable[[str], None] = print) -> int:
    """Returns the exit code: 0 when the tiny model learned the task and predictions reload, else 1."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the Hub
    work = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="finetune-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    echo(f"smoke run in {work}")

    train_rows, eval_rows = make_sentiment_rows(600, seed=0), make_sentiment_rows(200, seed=1)
    train_file = _write_csv(work / "train.csv", train_rows)
    eval_file = _write_csv(work / "validation.csv", eval_rows)
    echo(f"1/4 data: {len(train_rows)} training and {len(eval_rows)} evaluation sentences")

    model_dir = build_tiny_bert(work / "tiny-bert", (row["text"] for row in train_rows))
    echo(f"2/4 model: tiny random BERT (2 layers, width 32) in {model_dir}")

    from finetune.config.loading import load_recipe
    from finetune.tasks.base import PredictRequest
    from finetune.tasks.predict import predict
    from finetune.training.run import run

    recipe = load_recipe(base={"task": "classification"}, flags={
        "model": {"name": str(model_dir)},
        "data": {"train_file": str(train_file), "validation_file": str(eval_file), "max_length": 32},
        "train": {"epochs": 4, "learning_rate": 3e-3, "batch_size": 16, "logging_steps": 20},
        "output_dir": str(work / "run"),
    })
    result = run(recipe, overwrite=True)
    accuracy = result.metrics["eval_accuracy"]
    echo(f"3/4 train + evaluate: eval_accuracy {accuracy:.3f} (chance 0.5) "
         f"in {result.metrics['train_runtime']:.1f} s")

    examples: list[tuple[str, str | None]] = [("a gorgeous , witty film", None),
                                              ("the plot was dull and the acting awful", None)]
    _, predictions = predict(result.run_dir, PredictRequest(examples))
    for prediction in predictions:
        echo(f"      {prediction['label']:<9} {prediction['score']:.3f}  {prediction['text']}")
    echo(f"4/4 predict: reloaded {result.run_dir} and labelled {len(predictions)} sentences")

    learned = accuracy >= REQUIRED_ACCURACY and [p["label"] for p in predictions] == ["positive", "negative"]
    if learned:
        echo("smoke run passed: train -> evaluate -> save -> reload -> predict all work.")
        return 0
    print(f"smoke run FAILED: accuracy {accuracy:.3f} < {REQUIRED_ACCURACY} or wrong example labels.",
          file=sys.stderr)
    return 1
