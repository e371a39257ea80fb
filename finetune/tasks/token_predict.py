"""`finetune predict` for a token classifier (entities in raw text), and the family's smoke case.

Entities come from transformers' own token-classification pipeline with aggregation_strategy="first": sub-tokens are
grouped into words, each word takes its first sub-token's tag (how the model was trained), and B-/I- words are
merged into entities with the mean score of their words; so `finetune predict` says what
`pipeline("token-classification", model=RUN, aggregation_strategy="first")` says.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.tasks.base import SmokeCase
from finetune.tasks.token_labels import pipeline_tag

if TYPE_CHECKING:
    from finetune.config.schema import Recipe
    from finetune.tasks.base import PredictRequest, TaskFamily

AGGREGATION = "first"


def predict_entities(run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                     request: PredictRequest) -> list[dict[str, Any]]:
    """Per input: its text and the entities found (text span, type, score, character offsets)."""
    from transformers import AutoTokenizer, pipeline

    from finetune.outputs.run_dir import tokenizer_folder

    model = family.load_trained_model(run_dir)
    if hasattr(model, "merge_and_unload"):  # a LoRA adapter: the pipeline wants a plain transformers model
        model = model.merge_and_unload()
    # BIOES/BILOU tags as the B-/I- the pipeline groups by (S-PER alone, B-PER ... E-PER together); IO stays.
    model.config.id2label = {index: pipeline_tag(name) for index, name in model.config.id2label.items()}
    # Loaded as training loaded it (add_prefix_space for byte-level BPE), whatever its files say.
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(run_dir),
                                              **family.task_class.tokenizer_options(model.config))
    max_length = recipe.data.max_length if recipe else min(tokenizer.model_max_length, 512)
    tokenizer.model_max_length = max_length  # the pipeline cuts long texts into windows of this many tokens
    tagger = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy=AGGREGATION,
                      device=model.device)
    texts = [text for text, _ in request.inputs]
    found: Any = tagger(texts, batch_size=request.batch_size)
    if texts and isinstance(found[0], dict):  # one input may come back unwrapped
        found = [found]
    records = []
    for text, entities in zip(texts, found):
        spans = [{"text": text[entity["start"]:entity["end"]], "type": entity["entity_group"],
                  "score": round(float(entity["score"]), 6), "start": int(entity["start"]), "end": int(entity["end"])}
                 for entity in entities]
        records.append({"text": text, "entities": spans,
                        "output": ", ".join(f"{span['text']} ({span['type']})" for span in spans)})
    return records


# ---- smoke case: a toy NER language --------------------------------------------------------------------------------

PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
SURNAMES = ["smith", "jones", "brown", "taylor", "walker", "wright"]
PLACES = ["paris", "london", "berlin", "madrid", "rome", "vienna", "oslo", "dublin"]
FILLER = ["we", "met", "saw", "went", "to", "in", "with", "today", "and", "then", "visited", "called", "from", "later"]


def make_ner_rows(count: int, seed: int) -> list[dict[str, list[str]]]:
    """Sentences of filler words with people (a first name B-PER, sometimes followed by a surname I-PER) and places
    (B-LOC): entity words come from fixed lists, so a small model can learn them in a few dozen steps."""
    generator = random.Random(seed)
    rows = []
    for _ in range(count):
        tokens: list[str] = []
        tags: list[str] = []
        for _ in range(generator.randint(2, 4)):
            tokens += generator.sample(FILLER, k=generator.randint(1, 3))
            tags += ["O"] * (len(tokens) - len(tags))
            if generator.random() < 0.5:
                tokens.append(generator.choice(PEOPLE))
                tags.append("B-PER")
                if generator.random() < 0.3:
                    tokens.append(generator.choice(SURNAMES))
                    tags.append("I-PER")
            else:
                tokens.append(generator.choice(PLACES))
                tags.append("B-LOC")
        rows.append({"tokens": tokens, "ner_tags": tags})
    return rows


def write_conll(path: Path, rows: list[dict[str, list[str]]]) -> Path:
    """Rows as a CoNLL file: token TAB tag a line, a blank line after each sentence."""
    path.write_text("".join("".join(f"{token}\t{tag}\n" for token, tag in zip(row["tokens"], row["ner_tags"])) + "\n"
                            for row in rows), encoding="utf-8")
    return path


def smoke_case(folder: Path) -> SmokeCase:
    train, validation = make_ner_rows(300, seed=0), make_ner_rows(60, seed=1)
    files = {"train_file": str(write_conll(folder / "train.conll", train)),
             "validation_file": str(write_conll(folder / "validation.conll", validation))}

    def check(metrics: dict[str, Any], records: list[dict[str, Any]]) -> str | None:
        found = {(entity["text"], entity["type"]) for record in records for entity in record["entities"]}
        if metrics["eval_f1"] < 0.8 or not {("alice smith", "PER"), ("paris", "LOC")} <= found:
            return f"entity F1 {metrics['eval_f1']:.3f} < 0.8, or not alice smith (PER) and paris (LOC) in {found}"
        return None

    return SmokeCase(settings={"data": {**files, "max_length": 48},
                               "train": {"epochs": 4, "batch_size": 16, "learning_rate": 3e-3, "seed": 0}},
                     texts=[" ".join(row["tokens"]) for row in train],
                     inputs=[("we met alice smith in paris today", None)], metric="eval_f1", check=check)
