"""Data preparation in memory that does not grow with the data (benchmarks/scaling.py measures it): text mode packs
batch by batch with the same blocks as one stream over the whole split, and label and row checks read splits in
batches with the same results and messages as before.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from finetune.tasks.lm_inputs import StreamPacker, lines_to_documents, pack_blocks


def word_lengths(documents: list[str]) -> list[list[int]]:
    """A stand-in tokenizer: one token per word, its length."""
    return [[len(word) for word in document.split()] for document in documents]


def lines(count: int, seed: int) -> list[str]:
    generator = random.Random(seed)
    return ["" if generator.random() < 0.2 else " ".join("x" * generator.randint(1, 9)
                                                         for _ in range(generator.randint(1, 12)))
            for _ in range(count)]


@pytest.mark.parametrize("line_based", [True, False])
@pytest.mark.parametrize("keep_remainder", [True, False])
def test_packing_batch_by_batch_gives_the_blocks_of_one_stream(line_based, keep_remainder):
    rows = lines(503, seed=1)
    rows[100:140] = ["a b c"] * 40  # a document running over a batch boundary
    documents = lines_to_documents(rows) if line_based else [row for row in rows if row.strip()]
    expected = pack_blocks(([*ids, 0] for ids in word_lengths(documents)), 16, keep_remainder=keep_remainder)
    packer = StreamPacker(word_lengths, 0, 16, len(rows), line_based, keep_remainder)
    for _ in range(2):  # a second pass (datasets may map again) starts afresh
        blocks: list[list[int]] = []
        for start in range(0, len(rows), 64):
            blocks += packer(rows[start:start + 64], list(range(start, min(start + 64, len(rows)))))
        assert blocks == expected


def test_a_text_file_larger_than_a_batch_packs_as_one_stream(tmp_path):
    """Through the task: 2,500 lines (three map batches) of a .txt file, documents separated by blank lines."""
    from finetune.config.loading import load_recipe
    from finetune.data.sources import load_data
    from finetune.models.tiny import train_byte_bpe_tokenizer
    from finetune.tasks import get_task
    from finetune.tasks.smoke_data import make_sentences

    sentences = make_sentences(2500, seed=2)
    text = [sentence if index % 7 else "" for index, sentence in enumerate(sentences)]
    path = tmp_path / "train.txt"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    (tmp_path / "valid.txt").write_text("\n".join(sentences[:30]) + "\n", encoding="utf-8")
    tokenizer = train_byte_bpe_tokenizer(sentences[:200])
    recipe = load_recipe(base={"task": "generation"}, flags={"model": {"name": "unused"}, "data": {
        "train_file": str(path), "validation_file": str(tmp_path / "valid.txt"), "format": "text",
        "max_length": 32}})
    task = get_task(recipe)
    data = load_data(recipe.data)
    task.setup(data)
    blocks = task.tokenize(data.train, tokenizer)["input_ids"]

    documents = lines_to_documents(data.train["text"])
    ids = tokenizer(documents)["input_ids"]
    assert blocks == pack_blocks(([*row, tokenizer.eos_token_id] for row in ids), 32)
    assert len(blocks) > 100


def _data(rows: dict[str, list[Any]]) -> Any:
    import datasets

    from finetune.data.sources import LoadedData

    return LoadedData(train=datasets.Dataset.from_dict(rows))


@pytest.fixture
def small_batches(monkeypatch):
    import finetune.data.scan

    monkeypatch.setattr(finetune.data.scan, "BATCH_ROWS", 3)


def test_labels_are_counted_batch_by_batch_over_the_selected_rows(small_batches):
    import datasets

    from finetune.data.scan import distinct_values, value_counts

    split = datasets.Dataset.from_dict({"label": ["b", "a", "b", None, "c", "b", "a"]})
    assert value_counts(split, "label") == {"b": 3, "a": 2, None: 1, "c": 1}
    assert distinct_values(split, "label")[:2] == ["b", "a"]  # first appearance first
    assert value_counts(split.select([6, 5, 1]), "label") == {"a": 2, "b": 1}
    nested = datasets.Dataset.from_dict({"labels": [["x", "y"], ["x"], ["x", "y"], []]})
    assert value_counts(nested, "labels") == {("x", "y"): 2, ("x",): 1, (): 1}


def test_label_checks_over_many_batches_name_the_bad_label(small_batches):
    """Reading labels in batches keeps the checks whole: a label only the last batch holds is still found."""
    from finetune.config.loading import load_recipe
    from finetune.errors import UserError
    from finetune.tasks import get_task

    rows = {"text": [f"review {index}" for index in range(10)], "label": ["good", "bad"] * 4 + ["good", "Good "]}
    task = get_task(load_recipe(base={"task": "classification"}, flags={"model": {"name": "unused"}}))
    with pytest.raises(UserError, match="differ only by case or spaces"):
        task.setup(_data(rows))
    rows["label"][-1] = "meh"
    task = get_task(load_recipe(base={"task": "classification"}, flags={"model": {"name": "unused"}, "data": {
        "label_names": ["bad", "good"]}}))
    with pytest.raises(UserError, match="Label 'meh' in the train data is not one of the labels"):
        task.setup(_data(rows))
    rows["label"][-1] = "good"
    task = get_task(load_recipe(base={"task": "classification"}, flags={"model": {"name": "unused"}}))
    task.setup(_data(rows))
    assert task.label_names == ["bad", "good"]
    assert task.label_counts() == [4, 6]


def test_ner_rows_checked_by_arrow_still_name_the_bad_row(small_batches):
    """The whole-batch check finds nothing wrong or hands over to the row by row one, which names the row."""
    from finetune.errors import UserError
    from finetune.tasks.token_labels import check_rows, tag_names

    def split(tags: list[list[Any]]) -> Any:
        import datasets

        return datasets.Dataset.from_dict({"tokens": [["Ann", "sings"]] * len(tags), "ner_tags": tags})

    good = [["B-PER", "O"]] * 8
    names = {"O": 0, "B-PER": 1}
    check_rows(split(good), "train", "tokens", "ner_tags", names)
    assert tag_names([("train", split(good))], "tokens", "ner_tags", None) == ["O", "B-PER"]
    with pytest.raises(UserError, match="Row 7 of the train data has 2 tokens but 1 tags"):
        check_rows(split([*good[:6], ["O"], good[0]]), "train", "tokens", "ner_tags", names)
    with pytest.raises(UserError, match="Tag 'B-LOC' in row 8 of the train data"):
        check_rows(split([*good[:7], ["B-LOC", "O"]]), "train", "tokens", "ner_tags", names)
    with pytest.raises(UserError, match="Tag 2 in row 5 of the train data"):
        check_rows(split([[1, 0]] * 4 + [[2, 0]]), "train", "tokens", "ner_tags", names)
    with pytest.raises(UserError, match="Row 1 of the train data has tag ids"):
        tag_names([("train", split([[1, 0]] * 4))], "tokens", "ner_tags", None)


def test_a_conll_file_is_parsed_once_until_it_changes(cache_dir, tmp_path, monkeypatch):
    import finetune.data.conll
    from finetune.config.schema import DataSection
    from finetune.data.sources import load_data

    parses: list[int] = []
    original = finetune.data.conll.parse_conll

    def counting(*args: Any, **kwargs: Any) -> Any:
        parses.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(finetune.data.conll, "parse_conll", counting)
    path = tmp_path / "train.conll"
    path.write_text("Ann\tB-PER\nsings\tO\n\nBob\tB-PER\n", encoding="utf-8")
    first = load_data(DataSection(train_file=str(path))).train
    again = load_data(DataSection(train_file=str(path))).train
    assert parses == [1]
    assert again.to_dict() == first.to_dict() == {"tokens": [["Ann", "sings"], ["Bob"]],
                                                  "ner_tags": [["B-PER", "O"], ["B-PER"]]}
    path.write_text("Ann\tB-PER\n", encoding="utf-8")
    assert load_data(DataSection(train_file=str(path))).train["tokens"] == [["Ann"]]
    assert parses == [1, 1]
