"""CoNLL files for token classification: what a sentence is, which lines are skipped, and the messages bad files get."""

from __future__ import annotations

import pytest

from finetune.config.schema import DataSection
from finetune.data.conll import parse_conll, read_conll
from finetune.data.sources import load_data
from finetune.errors import UserError
from tests.conftest import requires_data


def test_blank_and_whitespace_only_lines_separate_sentences_and_docstart_is_skipped(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\t\n"
                    "Peter\tB-PER\nBlackburn   I-PER\n \n\n-DOCSTART-\tO\nBrussels\tB-LOC\r\n", encoding="utf-8")
    split = read_conll(path)
    assert split["tokens"] == [["EU", "rejects"], ["Peter", "Blackburn"], ["Brussels"]]
    assert split["ner_tags"] == [["B-ORG", "O"], ["B-PER", "I-PER"], ["B-LOC"]]  # the tag is the last column


def test_a_line_with_one_column_is_an_error_naming_its_line():
    with pytest.raises(UserError, match=r"bad\.conll: line 3 has one column \('London'\)"):
        parse_conll(["Paris\tB-LOC", "", "London", "is\tO"], "bad.conll")


def test_a_file_without_sentences_and_a_file_that_is_not_utf8_are_errors(tmp_path):
    empty = tmp_path / "empty.conll"
    empty.write_text("\n\t\n-DOCSTART- O\n", encoding="utf-8")
    with pytest.raises(UserError, match="no sentences found"):
        read_conll(empty)
    latin = tmp_path / "latin.conll"
    latin.write_bytes("Zürich\tB-LOC\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_conll(latin)


def test_conll_files_load_by_extension_and_in_a_folder_by_split_name(tmp_path):
    (tmp_path / "train.conll").write_text("Paris\tB-LOC\nis\tO\n\nBob\tB-PER\n", encoding="utf-8")
    (tmp_path / "dev.conll").write_text("Rome\tB-LOC\n", encoding="utf-8")
    loaded = load_data(DataSection(dataset=str(tmp_path)))
    assert loaded.train is not None and loaded.train["tokens"] == [["Paris", "is"], ["Bob"]]
    assert loaded.eval["validation"]["ner_tags"] == [["B-LOC"]]


@requires_data
def test_wnut17_reads_with_its_published_counts(data_dir):
    folder = data_dir / "ner" / "wnut17"
    counts = {name: read_conll(folder / name) for name in
              ("wnut17train.conll", "emerging.dev.conll", "emerging.test.annotated")}
    assert [len(split) for split in counts.values()] == [3394, 1009, 1287]  # the paper's sentence counts
    assert [sum(map(len, split["tokens"])) for split in counts.values()] == [62730, 15733, 23394]
    train = counts["wnut17train.conll"]
    first = train[0]
    assert " ".join(first["tokens"]).startswith("@paulwalk It 's the view")
    assert first["ner_tags"][first["tokens"].index("Empire"):][:3] == ["B-location", "I-location", "I-location"]
    assert sum(tag.startswith("B-") for tags in train["ner_tags"] for tag in tags) == 1975
