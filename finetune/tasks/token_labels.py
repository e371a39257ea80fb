"""Token classification labels: which columns hold the words and their tags, the tag set, the alignment of word
tags to sub-tokens, and the entity-level scores (seqeval).

Pure Python plus seqeval (imported inside the scoring functions): the task module (token_classification.py) wires
these into the Trainer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from finetune.data.scan import arrow_tables
from finetune.errors import UserError, preview

if TYPE_CHECKING:
    import datasets

IGNORED = -100  # the label id the loss and the metrics skip (PyTorch's CrossEntropyLoss ignore_index)
# Byte-level BPE tokenizers split pre-tokenized words only with a space before each (run_ner.py does the same).
PREFIX_SPACE_MODELS = {"gpt2", "roberta", "deberta", "bloom", "longformer"}
TOKEN_COLUMN_GUESSES = ("tokens", "words")
TAG_COLUMN_GUESSES = ("ner_tags", "tags", "labels", "label", "ner")


def tokenizer_options(config: Any) -> dict[str, Any]:
    """How a token classifier's tokenizer is loaded, wherever it is (training, check, evaluate, predict): byte-level
    BPE models (RoBERTa, GPT-2, ...) with `add_prefix_space`, so each word of a pre-split sentence is tokenized as
    after a space. Without it the words are tokenized as if glued together (`Ġparis` becomes `p a r i s`), and a
    checkpoint whose tokenizer files do not say add_prefix_space (roberta-base's own) scores far below its training."""
    return {"add_prefix_space": True} if getattr(config, "model_type", None) in PREFIX_SPACE_MODELS else {}


def guess_column(columns: Sequence[str], given: str | None, guesses: Sequence[str], what: str, flag: str) -> str:
    if given:
        if given not in columns:
            raise UserError(f"Column '{given}' is not in the data. Columns: {', '.join(columns)}. Pass {flag} with "
                            f"one of them.")
        return given
    found = next((guess for guess in guesses if guess in columns), None)
    if found is None:
        raise UserError(f"Cannot tell which column holds the {what}. Columns: {', '.join(columns)}. "
                        f"Pass {flag} NAME.")
    return found


def class_label_names(feature: Any) -> list[str] | None:
    """Tag names of a Hub dataset whose tag column is a sequence of `ClassLabel` (conll2003, wnut_17)."""
    inner = getattr(feature, "feature", None)
    names = getattr(inner, "names", None)
    return list(names) if names else None


def ordered_tags(tags: set[str]) -> list[str]:
    """Tag names in id order: O first, then by entity type, B- before I- (the order of the Hub's NER datasets)."""
    def key(tag: str) -> tuple[str, str]:
        prefix, _, entity = tag.partition("-")
        return (entity, prefix) if entity else (tag, "")

    return (["O"] if "O" in tags else []) + sorted(tags - {"O"}, key=key)


def tag_names(splits: list[tuple[str, datasets.Dataset]], tokens: str, tags: str,
              given: list[str] | None) -> list[str]:
    """The tag set: the recipe's `label_names`, the data's ClassLabel names, or every tag string in the data."""
    if given:
        return list(given)
    names = class_label_names(splits[0][1].features[tags])
    if names:
        return names
    seen: set[str] = set()
    for name, split in splits:
        known = _string_tags(split, tags)
        if known is not None:  # Arrow's distinct tags: no row by row reading
            seen |= known
            continue
        for row, values in enumerate(_cells(split, [tags]), start=1):
            for value in values[0] or []:
                if not isinstance(value, str):
                    raise UserError(f"Row {row} of the {name} data has tag ids ({preview(value)}) in column "
                                    f"'{tags}' but the data names no tags: pass --label-names (id order, e.g. "
                                    f"--label-names O --label-names B-PER ...) or set data.label_names.")
                seen.add(value)
    if len(seen) < 2:
        raise UserError(f"Only {len(seen)} distinct tag ({preview(sorted(seen))}) in column '{tags}': token "
                        f"classification needs at least two (O and an entity tag).")
    return ordered_tags(seen)


def check_rows(split: datasets.Dataset, name: str, tokens: str, tags: str | None, label2id: dict[str, int]) -> None:
    """Every row: a list of tokens, as many tags, each tag known. The message names the row (1-based)."""
    if _rows_fine(split, tokens, tags, label2id):  # Arrow checked every row at once: nothing to name
        return
    for row, record in enumerate(_cells(split, [tokens, tags] if tags else [tokens]), start=1):
        words = record[0]
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise UserError(f"Row {row} of the {name} data: column '{tokens}' must hold a list of words (strings), "
                            f"not {preview(words)}.")
        if tags is None:
            continue
        values = record[1]
        if not isinstance(values, list) or len(values) != len(words):
            count = len(values) if isinstance(values, list) else "no list of"
            raise UserError(f"Row {row} of the {name} data has {len(words)} tokens but {count} tags in column "
                            f"'{tags}': each token needs exactly one tag.")
        for value in values:
            tag_id(value, label2id, f"row {row} of the {name} data")


def _string_tags(split: datasets.Dataset, tags: str) -> set[str] | None:
    """The distinct tags of a column of string lists without nulls, by Arrow; None for anything else."""
    import pyarrow as pa
    import pyarrow.compute as pc

    seen: set[str] = set()
    for table in arrow_tables(split, [tags]):
        column = table[tags]
        if not (pa.types.is_list(column.type) and pa.types.is_string(column.type.value_type)) or column.null_count:
            return None
        values = pc.list_flatten(column)
        if values.null_count:
            return None
        seen.update(pc.unique(values).to_pylist())
    return seen


def _rows_fine(split: datasets.Dataset, tokens: str, tags: str | None, label2id: dict[str, int]) -> bool:
    """check_rows' questions asked of whole Arrow batches: lists of strings, as many tags as tokens, each tag known.
    False when any answer is no (or the columns are of other types): the row by row check then names the row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def string_lists(column: Any) -> bool:
        return (pa.types.is_list(column.type) and pa.types.is_string(column.type.value_type)
                and not column.null_count and not pc.list_flatten(column).null_count)

    known = pa.array(list(label2id), pa.string())
    for table in arrow_tables(split, [tokens, tags] if tags else [tokens]):
        words = table[tokens]
        if not string_lists(words):
            return False
        if tags is None:
            continue
        values = table[tags]
        if not pa.types.is_list(values.type) or values.null_count:
            return False
        if not pc.all(pc.equal(pc.list_value_length(words), pc.list_value_length(values))).as_py():
            return False
        flat = pc.list_flatten(values)
        if flat.null_count:
            return False
        if pa.types.is_string(flat.type):
            if not pc.all(pc.is_in(flat, value_set=known)).as_py():
                return False
        elif pa.types.is_integer(flat.type):
            bounds = pc.min_max(flat).as_py()
            if len(flat) and not (bounds["min"] >= 0 and bounds["max"] < len(label2id)):
                return False
        else:
            return False
    return True


def _cells(split: datasets.Dataset, columns: list[str]) -> Iterator[tuple[Any, ...]]:
    """Each row's cells of `columns`, read a thousand rows at a time (not the whole split as Python lists)."""
    for batch in split.select_columns(columns).iter(batch_size=1000):
        yield from zip(*(batch[column] for column in columns))


def tag_id(value: Any, label2id: dict[str, int], where: str) -> int:
    if isinstance(value, str):
        if value in label2id:
            return label2id[value]
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(label2id):
        return value
    raise UserError(f"Tag {preview(value)} in {where} is not one of the tags {preview(list(label2id))}. Fix the "
                    f"data or set data.label_names (--label-names).")


def continuation_ids(names: list[str]) -> list[int]:
    """For each tag id, the id a later sub-token of the same word gets when every sub-token is labelled: B-X -> I-X
    (as transformers' run_ner.py does), else the same id."""
    index = {name: position for position, name in enumerate(names)}
    return [index.get("I-" + name[2:], position) if name.startswith("B-") else position
            for position, name in enumerate(names)]


def align_labels(word_ids: Sequence[int | None], word_labels: Sequence[int], label_all_tokens: bool = False,
                 continuation: Sequence[int] | None = None) -> list[int]:
    """Sub-token labels from word labels: a word's first sub-token carries its label; special tokens and (unless
    `label_all_tokens`) the word's other sub-tokens get -100, which the loss and the metrics skip."""
    labels: list[int] = []
    previous: int | None = None
    for word in word_ids:
        if word is None:
            labels.append(IGNORED)
        elif word != previous:
            labels.append(word_labels[word])
        elif label_all_tokens:
            label = word_labels[word]
            labels.append(continuation[label] if continuation is not None else label)
        else:
            labels.append(IGNORED)
        previous = word
    return labels


def first_subtoken_positions(word_ids: Sequence[int | None]) -> dict[int, int]:
    """Word index -> position of its first sub-token (words cut off by truncation are absent)."""
    positions: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word is not None and word not in positions:
            positions[word] = position
    return positions


# ---- scores ------------------------------------------------------------------------------------------------------


def tag_sequences(predicted: Any, labels: Any, names: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Predicted and gold tag names of every labelled position (label != -100), one list per example."""
    predictions, references = [], []
    for predicted_row, label_row in zip(predicted, labels):
        kept = [(int(p), int(gold)) for p, gold in zip(predicted_row, label_row) if gold != IGNORED]
        predictions.append([names[p] for p, _ in kept])
        references.append([names[gold] for _, gold in kept])
    return predictions, references


_PREFIXES = {"B", "I", "E", "S", "L", "U"}  # IOB2, BIOES (E- end, S- single) and BILOU (L- last, U- unit)
_BILOU = {"L": "E", "U": "S"}


def split_tag(tag: str) -> tuple[str | None, str]:
    """('B', 'PER') for B-PER; (None, 'PER') for a tag without a scheme prefix (IO: PER, LOC; or O)."""
    prefix, separator, entity = tag.partition("-")
    return (prefix, entity) if separator and entity and prefix in _PREFIXES else (None, tag)


def prefixed(tags: Sequence[str]) -> list[str]:
    """Tags as seqeval reads them. A tag without a prefix (the IO scheme: PER, LOC) begins an entity where the
    previous tag differs and continues it over a run of the same tag, so it becomes B-PER, I-PER; BILOU's L- and U-
    become BIOES' E- and S-; prefixed tags and O stay. (Read raw, seqeval takes a prefix-less tag's first letter as
    its prefix: ORG would be O, outside, and PER an entity of type ER.)"""
    result: list[str] = []
    previous = "O"
    for tag in tags:
        prefix, entity = split_tag(tag)
        if tag == "O":
            result.append(tag)
        elif prefix is None:
            result.append(("I-" if previous == tag else "B-") + tag)
        else:
            result.append(f"{_BILOU.get(prefix, prefix)}-{entity}")
        previous = tag
    return result


def pipeline_tag(tag: str) -> str:
    """The tag transformers' token-classification pipeline groups correctly: it knows B- and I- (and treats a tag
    without a prefix as continuing a run of itself, right for IO), so BIOES' S- (BILOU's U-) becomes B- and E- (L-)
    becomes I-."""
    prefix, entity = split_tag(tag)
    return {"S": "B-", "U": "B-", "E": "I-", "L": "I-"}[prefix] + entity if prefix in ("S", "U", "E", "L") else tag


def is_bioes(tags: Sequence[Sequence[str]]) -> bool:
    """Whether tags (as `prefixed` gives them) use E-/S- (BIOES or BILOU) rather than B-/I- only."""
    return any(tag[:2] in ("E-", "S-") for row in tags for tag in row)


def entity_scores(predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 (overall: micro over entities; and per type), plus token accuracy.

    By seqeval, as transformers' run_ner.py reports them: IOB2 tags (and IO tags, made IOB2 by `prefixed`: an entity
    per run of the same type) with its default, conlleval-style matching; BIOES (and BILOU) gold tags with its strict
    IOBES mode, where only well-formed entities count (conlleval would take B-PER I-PER without its E-PER as one).
    """
    import warnings

    from seqeval.metrics import accuracy_score, classification_report
    from seqeval.scheme import IOBES

    accuracy = float(accuracy_score(references, predictions))  # of the tags themselves, before any conversion
    references = [prefixed(row) for row in references]
    predictions = [prefixed(row) for row in predictions]
    strict: dict[str, Any] = {"mode": "strict", "scheme": IOBES} if is_bioes(references) else {}
    with warnings.catch_warnings():  # seqeval warns about 0/0 for types never predicted; they score 0
        warnings.simplefilter("ignore")
        report = classification_report(references, predictions, output_dict=True, zero_division=0, **strict)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    scores = {"precision": float(micro["precision"]), "recall": float(micro["recall"]),
              "f1": float(micro["f1-score"]), "accuracy": accuracy}
    for entity, values in report.items():
        if entity.endswith(" avg"):
            continue
        scores.update({f"{entity}_precision": float(values["precision"]), f"{entity}_recall": float(values["recall"]),
                       f"{entity}_f1": float(values["f1-score"]), f"{entity}_number": float(values["support"])})
    return scores
