"""CoNLL files for token classification: one token a line, its tag in the last column, sentences apart.

The layout of CoNLL-2003, WNUT-17 and most NER corpora: columns separated by any whitespace (tabs or spaces), the
token first and the tag last (CoNLL-2003's part-of-speech and chunk columns in between are ignored), a blank or
whitespace-only line between sentences (WNUT-17's train file separates 2,394 of its sentences with a lone tab), and
`-DOCSTART-` lines between documents skipped. Read into a dataset with a `tokens` and a `ner_tags` column (tags as
the strings of the file); the token classification task maps them to ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from finetune.errors import UserError, preview

if TYPE_CHECKING:
    import datasets

# File endings read as CoNLL (`emerging.test.annotated` is WNUT-17's test file).
CONLL_SUFFIXES = (".conll", ".iob", ".iob2", ".bio", ".annotated")
TOKENS_COLUMN, TAGS_COLUMN = "tokens", "ner_tags"


def parse_conll(lines: list[str], source: str) -> tuple[list[list[str]], list[list[str]]]:
    """Sentences of tokens and their tags; a line with a single column is an error naming its line number."""
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    labels: list[str] = []
    for number, line in enumerate(lines, start=1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if words:
                sentences.append(words)
                tags.append(labels)
                words, labels = [], []
            continue
        if len(columns) < 2:
            raise UserError(f"{source}: line {number} has one column ({preview(line.strip())}); CoNLL data needs "
                            f"a token and its tag on each line (separated by a tab or spaces), and a blank line "
                            f"between sentences.")
        words.append(columns[0])
        labels.append(columns[-1])
    if words:
        sentences.append(words)
        tags.append(labels)
    return sentences, tags


def read_conll(path: Path) -> datasets.Dataset:
    """A CoNLL file as a dataset of sentences: `tokens` (list of str) and `ner_tags` (list of str)."""
    import datasets

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text ({error.reason}). Convert the file to UTF-8.") from error
    # split("\n"), not splitlines(): a form feed or U+2028 inside a token must not count as a line break.
    sentences, tags = parse_conll([line.rstrip("\r") for line in text.split("\n")], str(path))
    if not sentences:
        raise UserError(f"{path}: no sentences found (expected one token and its tag per line).")
    features = datasets.Features({TOKENS_COLUMN: datasets.Sequence(datasets.Value("string")),
                                  TAGS_COLUMN: datasets.Sequence(datasets.Value("string"))})
    return datasets.Dataset.from_dict({TOKENS_COLUMN: sentences, TAGS_COLUMN: tags}, features=features)
