"""The mechanisms behind the speed-ups that benchmarks/ measures: length-grouped batches, the preprocessing caches,
length-sorted evaluation, packing, and the CUDA-only training settings. No timings are asserted here."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest

BATCH = 32


def realistic_lengths(count: int, seed: int = 0) -> list[int]:
    """Token counts shaped like SST-2 sentences under a BERT tokenizer: mostly short, a long tail (3 to 66)."""
    rng = random.Random(seed)
    return [max(3, min(66, round(rng.lognormvariate(2.4, 0.6)))) for _ in range(count)]


# ---- length-grouped batches ------------------------------------------------------------------------------------


def test_length_grouped_batches_pad_far_less_than_random_ones():
    import torch

    from finetune.data.sampling import SeededLengthGroupedSampler, padding_efficiency

    lengths = realistic_lengths(5000)
    grouped = list(SeededLengthGroupedSampler(lengths, BATCH, seed=42))
    shuffled = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(42)).tolist()
    assert sorted(grouped) == list(range(len(lengths)))  # every example exactly once
    assert padding_efficiency(lengths, grouped, BATCH) >= 0.9
    assert padding_efficiency(lengths, shuffled, BATCH) < 0.6


def test_each_batch_holds_similar_lengths_and_the_longest_comes_first():
    from finetune.data.sampling import SeededLengthGroupedSampler

    lengths = realistic_lengths(1000, seed=1)
    order = list(SeededLengthGroupedSampler(lengths, BATCH, seed=0))
    batches = [[lengths[index] for index in order[start:start + BATCH]] for start in range(0, len(order), BATCH)]
    assert max(batches[0]) == max(lengths)  # out-of-memory shows at the first step, not late in the epoch
    assert len(batches[-1]) == len(lengths) % BATCH  # the one partial batch is last: boundaries stay aligned
    spreads = sorted(max(batch) - min(batch) for batch in batches)
    assert spreads[len(spreads) // 2] <= 1  # the typical batch: lengths within one token of each other
    # Batches are shuffled, not run from long to short across the epoch.
    longest = [max(batch) for batch in batches[1:]]
    assert longest != sorted(longest, reverse=True)


def test_order_depends_only_on_seed_and_epoch():
    from finetune.data.sampling import SeededLengthGroupedSampler

    lengths = realistic_lengths(500, seed=2)

    def order(seed: int, epoch: int) -> list[int]:
        sampler = SeededLengthGroupedSampler(lengths, 16, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(7, 0) == order(7, 0)
    assert order(7, 1) == order(7, 1)
    assert order(7, 1) != order(7, 0)
    assert order(8, 0) != order(7, 0)


def test_example_lengths_and_length_order_follow_selected_rows():
    import datasets

    from finetune.data.sampling import example_lengths, length_order

    dataset = datasets.Dataset.from_dict({"input_ids": [[1] * n for n in (3, 5, 1, 7, 2)]})
    assert example_lengths(dataset) == [3, 5, 1, 7, 2]
    assert example_lengths(dataset.select([4, 0, 3])) == [2, 3, 7]
    assert example_lengths(dataset.select(range(1, 3))) == [5, 1]
    assert length_order(dataset) == [3, 1, 0, 4, 2]


# ---- the tokenization cache ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    from finetune.tasks.smoke_data import make_sentiment_rows
    from tests.builders import train_wordpiece_tokenizer

    return train_wordpiece_tokenizer([row["text"] for row in make_sentiment_rows(200, seed=0)])


def sentiment_data(count: int = 300):
    import datasets

    from finetune.data.sources import LoadedData
    from finetune.tasks.smoke_data import make_sentiment_rows

    rows = make_sentiment_rows(count, seed=3)
    return LoadedData(train=datasets.Dataset.from_dict({"text": [row["text"] for row in rows],
                                                        "label": [row["label"] for row in rows]}))


def classification_task(**data: object):
    from finetune.config.loading import load_recipe
    from finetune.tasks import get_task

    recipe = load_recipe(base={"task": "classification"}, flags={"model": {"name": "unused"}, "data": data})
    task = get_task(recipe)
    task.setup(sentiment_data())  # a fresh dataset each time, as a re-run builds it
    return task


@pytest.fixture
def tokenizer_calls(tokenizer, monkeypatch) -> list[int]:
    """How many times the tokenizer's __call__ ran (it is looked up on the class)."""
    calls: list[int] = []
    original = type(tokenizer).__call__

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", counting)
    return calls


def test_a_rerun_reads_the_tokenized_split_from_the_cache(cache_dir, tokenizer, tokenizer_calls):
    first_task = classification_task(max_length=64)
    first = first_task.tokenize(first_task.data.train, tokenizer)
    assert tokenizer_calls, "the first run tokenizes"
    cached_files = list((cache_dir / "tokenized").glob("*.arrow"))
    assert len(cached_files) == 1

    tokenizer_calls.clear()
    second_task = classification_task(max_length=64)  # new task, new in-memory dataset, same content
    second = second_task.tokenize(second_task.data.train, tokenizer)
    assert tokenizer_calls == [], "the re-run must not tokenize again"
    assert second.cache_files[0]["filename"] == str(cached_files[0])
    assert second[:] == first[:]


def test_changing_what_tokenization_depends_on_misses_the_cache(cache_dir, tokenizer, tokenizer_calls):
    task = classification_task(max_length=64)
    reference = task.tokenize(task.data.train, tokenizer)
    tokenizer_calls.clear()

    shorter_task = classification_task(max_length=8)
    shorter = shorter_task.tokenize(shorter_task.data.train, tokenizer)
    assert tokenizer_calls, "a different max_length must tokenize again"
    assert max(map(len, shorter["input_ids"])) <= 8 < max(map(len, reference["input_ids"]))

    tokenizer_calls.clear()
    relabelled = classification_task(max_length=64, label_names=["positive", "negative"])  # another label order
    relabelled_ids = relabelled.tokenize(relabelled.data.train, tokenizer)
    assert tokenizer_calls
    assert relabelled_ids["labels"] == [1 - label for label in reference["labels"]]

    tokenizer_calls.clear()
    task = classification_task(max_length=64)
    edited = task.data.train.map(lambda row: {"text": row["text"] + " indeed"})  # other text, same size
    task.tokenize(edited, tokenizer)
    assert tokenizer_calls
    assert len(list((cache_dir / "tokenized").glob("*.arrow"))) == 4


def test_the_cache_can_be_turned_off(cache_dir, tokenizer, tokenizer_calls, monkeypatch):
    monkeypatch.setenv("FINETUNE_NO_CACHE", "1")
    for _ in range(2):
        task = classification_task(max_length=64)
        task.tokenize(task.data.train, tokenizer)
    assert len(tokenizer_calls) >= 2
    assert not (cache_dir / "tokenized").exists()


def test_file_backed_datasets_keep_their_key_across_loads(cache_dir, tmp_path, tokenizer, tokenizer_calls):
    """Local files go through datasets.load_dataset: their fingerprint (not their content) is the key."""
    import datasets

    from tests.helpers import write_jsonl

    rows = [{"text": f"a film number {index}", "label": index % 2} for index in range(50)]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    task = classification_task(max_length=32)

    def load():
        return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))

    first = task.tokenize(load(), tokenizer)
    tokenizer_calls.clear()
    second = task.tokenize(load(), tokenizer)
    assert tokenizer_calls == []
    assert second[:] == first[:]


def test_a_glue_file_is_parsed_once_until_it_changes(cache_dir, tmp_path, monkeypatch):
    import os

    import finetune.data.glue_files as glue_files
    from finetune.data.glue import get_glue_task

    folder = tmp_path / "glue" / "SST-2"
    folder.mkdir(parents=True)
    tsv = folder / "dev.tsv"
    tsv.write_text("sentence\tlabel\n" + "".join(f"film {index}\t{index % 2}\n" for index in range(20)))
    parses: list[Path] = []
    read_tsv = glue_files._read_tsv
    monkeypatch.setattr(glue_files, "_read_tsv", lambda task, path: parses.append(path) or read_tsv(task, path))
    task = get_glue_task("sst2")

    first = glue_files.load_glue_split(task, tmp_path, "validation")
    second = glue_files.load_glue_split(task, tmp_path, "validation")
    assert len(parses) == 1
    assert second[:] == first[:] and second.features == first.features

    tsv.write_text("sentence\tlabel\n" + "".join(f"movie {index}\t{index % 2}\n" for index in range(20)))
    stat = tsv.stat()
    os.utime(tsv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a new mtime even on coarse clocks
    third = glue_files.load_glue_split(task, tmp_path, "validation")
    assert len(parses) == 2
    assert third["sentence"][0] == "movie 0"


# ---- length-sorted evaluation keeps predictions in file order -----------------------------------------------------


def test_classification_predictions_come_back_in_file_order(tmp_path, tokenizer):
    import json

    import numpy as np

    task = classification_task(max_length=64)
    raw = task.data.train.select(range(40))
    tokenized = task.tokenize(raw, tokenizer)
    seen_lengths: list[int] = []

    class Trainer:
        """Predicts label = length parity, so every prediction can be traced to its row."""

        def predict(self, dataset, metric_key_prefix="eval"):
            lengths = [len(ids) for ids in dataset["input_ids"]]
            seen_lengths.extend(lengths)
            logits = np.array([[0.0, 1.0] if length % 2 else [1.0, 0.0] for length in lengths])
            return SimpleNamespace(predictions=logits, label_ids=np.array(dataset["labels"]), metrics={})

        def is_world_process_zero(self):
            return True

    task.write_predictions(Trainer(), raw, tokenized, tmp_path / "predictions.jsonl")
    assert seen_lengths == sorted(seen_lengths, reverse=True)  # evaluated longest first
    records = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [record["text"] for record in records] == raw["text"]
    expected = [task.label_names[len(ids) % 2] for ids in tokenized["input_ids"]]
    assert [record["prediction"] for record in records] == expected


# ---- packing ---------------------------------------------------------------------------------------------------


def test_packing_keeps_every_token():
    from finetune.tasks.lm_inputs import pack_blocks

    rng = random.Random(0)
    documents = [[rng.randrange(1000) for _ in range(rng.randrange(1, 300))] for _ in range(200)]
    stream = [token for document in documents for token in document]
    blocks = pack_blocks(documents, 128)
    assert all(len(block) == 128 for block in blocks)  # no padding: every computed position is a real token
    assert [token for block in blocks for token in block] == stream[:len(blocks) * 128]
    assert len(stream) - len(blocks) * 128 < 128  # only the final partial block is dropped
    with_remainder = pack_blocks(documents, 128, keep_remainder=True)
    assert [token for block in with_remainder for token in block] == stream


# ---- training settings -------------------------------------------------------------------------------------------


def test_cuda_only_speed_settings(monkeypatch):
    import torch

    import finetune.training.arguments as training_args
    from finetune.config.schema import TrainSection

    monkeypatch.setattr(training_args, "has_cuda", lambda: False)
    assert training_args.speed_options(TrainSection(), use_cpu=False) == {"torch_compile": False}

    monkeypatch.setattr(training_args, "has_cuda", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    options = training_args.speed_options(TrainSection(torch_compile=True), use_cpu=False)
    assert options["optim"] == "adamw_torch_fused" and options["tf32"] is True and options["torch_compile"] is True
    assert options["dataloader_num_workers"] == 4 and options["dataloader_persistent_workers"] is True
    assert training_args.speed_options(TrainSection(), use_cpu=True) == {"torch_compile": False}


def test_torch_compile_is_a_recipe_option(tmp_path):
    from finetune.config.loading import load_recipe
    from finetune.training.arguments import build_training_arguments

    recipe = load_recipe(base={"task": "classification"}, overrides=["train.torch_compile=true"])
    task = SimpleNamespace(main_metric="accuracy",
                           training_arguments=SimpleNamespace)
    arguments = build_training_arguments(recipe, task, tmp_path, ["validation"])
    assert arguments.torch_compile is True
    assert arguments.train_sampling_strategy == "group_by_length"
