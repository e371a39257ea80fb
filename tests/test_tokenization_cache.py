"""The tokenization cache through every task family's real `tokenize`: a re-run with the same data, tokenizer and
settings reads the tokenized split back (no tokenizer call, the same rows), and changing anything the tokenized rows
depend on (max_length, prefix, labels and their order, chat template, label_all_tokens, block size, the tokenizer's
own settings) tokenizes again. The generic mechanism is in test_speed_features.py; here each family's key.

Each preparation builds a new task from a recipe, new in-memory splits and a tokenizer loaded from its folder, as
a new process would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finetune.tasks import smoke_data


@pytest.fixture(scope="module")
def tokenizer_folders(tmp_path_factory) -> dict[str, Path]:
    """Tokenizers of each kind the families use, saved (loading one from disk is what a re-run does)."""
    from finetune.models.tiny import train_byte_bpe_tokenizer, train_t5_tokenizer, train_wordpiece_tokenizer

    texts = ([row["text"] for row in smoke_data.make_sentiment_rows(100, seed=0)]
             + smoke_data.make_sentences(100, seed=0))
    root = tmp_path_factory.mktemp("tokenizers")
    folders = {}
    for name, tokenizer in (("wordpiece", train_wordpiece_tokenizer(texts)), ("t5", train_t5_tokenizer(texts)),
                            ("gpt2", train_byte_bpe_tokenizer(texts))):
        tokenizer.save_pretrained(root / name)
        folders[name] = root / name
    return folders


@pytest.fixture
def load_tokenizer(tokenizer_folders):
    import transformers

    def load(kind: str, tokenizer_class: str = "AutoTokenizer", **kwargs: Any):
        tokenizer = getattr(transformers, tokenizer_class).from_pretrained(tokenizer_folders[kind], **kwargs)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token  # as models.loading.load_tokenizer does
        return tokenizer

    return load


@pytest.fixture
def tokenizer_calls(monkeypatch) -> list[str]:
    """Every call of a fast tokenizer or its chat template (looked up on the class, so any instance counts)."""
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

    calls: list[str] = []
    for cls, name in ((PreTrainedTokenizerFast, "__call__"), (PreTrainedTokenizerBase, "__call__"),
                      (PreTrainedTokenizerBase, "apply_chat_template")):
        original = getattr(cls, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, counting)
    return calls


def prepare(task: str, rows: list[dict[str, Any]], tokenizer: Any, *, eval_rows: list[dict[str, Any]] | None = None,
            which: str = "train", **data: Any) -> Any:
    """A fresh task set up on fresh splits of `rows`, then `which` split tokenized."""
    import datasets

    from finetune.config.loading import load_recipe
    from finetune.data.sources import LoadedData
    from finetune.tasks import get_task

    recipe = load_recipe(base={"task": task}, flags={"model": {"name": "unused"}, "data": data})
    loaded = LoadedData(train=datasets.Dataset.from_list(rows),
                        eval={"validation": datasets.Dataset.from_list(eval_rows)} if eval_rows else {})
    instance = get_task(recipe)
    instance.setup(loaded)
    split = loaded.train if which == "train" else loaded.eval["validation"]
    return instance.tokenize(split, tokenizer)


def rows_of(dataset: Any) -> dict[str, list]:
    return dataset.to_dict()


def assert_cached_rerun(cache_dir: Path, calls: list[str], make: Any) -> Any:
    """`make()` twice: the first tokenizes into one cache file, the second reads that file and calls nothing."""
    before = set((cache_dir / "tokenized").glob("*.arrow"))
    calls.clear()
    first = make()
    assert calls, "the first preparation tokenizes"
    written = set((cache_dir / "tokenized").glob("*.arrow")) - before
    assert len(written) == 1
    calls.clear()
    second = make()
    assert calls == [], "an identical re-run must read the cache, not tokenize"
    assert second.cache_files[0]["filename"] == str(written.pop())
    assert rows_of(second) == rows_of(first)
    return first


def assert_misses(calls: list[str], make: Any, reference: Any) -> Any:
    """`make()` tokenizes again, and its rows differ from `reference`'s (the setting changed the output)."""
    calls.clear()
    changed = make()
    assert calls, "a changed setting must tokenize again"
    assert rows_of(changed) != rows_of(reference)
    return changed


# ---- data of each family --------------------------------------------------------------------------------------


def sentiment(count: int = 60) -> list[dict[str, Any]]:
    return smoke_data.make_sentiment_rows(count, seed=4)


def emotions(count: int = 60) -> list[dict[str, Any]]:
    return [{"text": row["text"], "labels": ["joy", "anger,fear"][index % 2] if index % 3 else "fear"}
            for index, row in enumerate(sentiment(count))]


def summaries(count: int = 40) -> list[dict[str, Any]]:
    return smoke_data.make_summary_rows(count, seed=5)


def translations(count: int = 40) -> list[dict[str, Any]]:
    return smoke_data.make_reversal_rows(count, seed=6)


def texts(count: int = 80) -> list[dict[str, Any]]:
    return [{"text": sentence} for sentence in smoke_data.make_sentences(count, seed=7)]


def pairs(count: int = 40) -> list[dict[str, Any]]:
    return [{"prompt": f"{sentence} Reverse:", "completion": " ".join(reversed(sentence.split()))}
            for sentence in smoke_data.make_sentences(count, seed=8)]


def conversations(count: int = 30) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": row["prompt"]},
                          {"role": "assistant", "content": row["completion"]}]} for row in pairs(count)]


def entities(count: int = 40) -> list[dict[str, Any]]:
    names = ["Paris", "Berlin", "Alice", "Bob"]  # not in the tokenizers' vocabulary: several pieces each
    rows = []
    for index, sentence in enumerate(smoke_data.make_sentences(count, seed=9)):
        words = [names[index % 4], "visited", *sentence.split()]
        tags = ["B-LOC" if index % 4 < 2 else "B-PER", "O", *["O"] * (len(words) - 2)]
        rows.append({"tokens": words, "ner_tags": tags})
    return rows


# ---- one test per family ----------------------------------------------------------------------------------------


def test_classification(cache_dir, load_tokenizer, tokenizer_calls):
    def run(**data: Any) -> Any:
        return prepare("classification", sentiment(), load_tokenizer("wordpiece"), **data)

    reference = assert_cached_rerun(cache_dir, tokenizer_calls, lambda: run(max_length=32))
    assert_misses(tokenizer_calls, lambda: run(max_length=6), reference)
    relabelled = assert_misses(tokenizer_calls, lambda: run(max_length=32, label_names=["positive", "negative"]),
                               reference)
    assert relabelled["labels"] == [1 - label for label in reference["labels"]]


def test_multi_label(cache_dir, load_tokenizer, tokenizer_calls):
    def run(**data: Any) -> Any:
        return prepare("classification", emotions(), load_tokenizer("wordpiece"), multi_label=True, **data)

    reference = assert_cached_rerun(cache_dir, tokenizer_calls, lambda: run(max_length=32))
    assert len(reference["labels"][0]) == 3  # anger, fear, joy
    reordered = assert_misses(tokenizer_calls, lambda: run(max_length=32, label_names=["joy", "fear", "anger"]),
                              reference)
    assert [row[::-1] for row in reordered["labels"]] == reference["labels"]
    # Another separator splits the cells differently: "anger,fear" becomes one label of its own.
    split_differently = assert_misses(tokenizer_calls, lambda: run(max_length=32, label_separator=";"), reference)
    assert len(split_differently["labels"][0]) == 3  # "anger,fear", fear, joy
    assert_misses(tokenizer_calls, lambda: run(max_length=6), reference)


def test_summarization(cache_dir, load_tokenizer, tokenizer_calls):
    def run(**data: Any) -> Any:
        return prepare("summarization", summaries(), load_tokenizer("t5"), **{"source_prefix": "", **data})

    reference = assert_cached_rerun(cache_dir, tokenizer_calls, lambda: run(max_length=64))
    prefixed = assert_misses(tokenizer_calls, lambda: run(max_length=64, source_prefix="summarize: "), reference)
    assert prefixed["labels"] == reference["labels"]  # the prefix goes before sources only
    assert_misses(tokenizer_calls, lambda: run(max_length=8), reference)
    shorter_targets = assert_misses(tokenizer_calls, lambda: run(max_length=64, max_target_length=4), reference)
    assert max(map(len, shorter_targets["labels"])) == 4


def test_translation(cache_dir, load_tokenizer, tokenizer_calls):
    def run(**data: Any) -> Any:
        return prepare("translation", translations(), load_tokenizer("t5"), **{"source_prefix": "", **data})

    reference = assert_cached_rerun(cache_dir, tokenizer_calls, lambda: run(source_lang="en", target_lang="de"))
    reverse = assert_misses(tokenizer_calls, lambda: run(source_lang="de", target_lang="en"), reference)
    assert reverse["input_ids"] == reference["labels"]
    assert_misses(tokenizer_calls, lambda: run(source_lang="en", target_lang="de", source_prefix="translate: "),
                  reference)


def test_causal_lm_text(cache_dir, load_tokenizer, tokenizer_calls):
    def run(which: str = "train", **data: Any) -> Any:
        return prepare("generation", texts(), load_tokenizer("gpt2"), eval_rows=texts(20), which=which, **data)

    reference = assert_cached_rerun(cache_dir, tokenizer_calls, lambda: run(max_length=16))
    assert {len(block) for block in reference["input_ids"]} == {16}
    blocks = assert_misses(tokenizer_calls, lambda: run(max_length=16, block_size=8), reference)
    assert {len(block) for block in blocks["input_ids"]} == {8}
    # An evaluation split keeps its last partial block, a training split drops it: not the same cache entry.
    evaluation = assert_cached_rerun(cache_dir, tokenizer_calls, lambda: run("validation", max_length=16))
    assert len(evaluation["input_ids"][-1]) < 16


def test_causal_lm_prompt_completion(cache_dir, load_tokenizer, tokenizer_calls):
    def run(**data: Any) -> Any:
        return prepare("generation", pairs(), load_tokenizer("gpt2"), **data)

    reference = assert_cached_rerun(cache_dir, tokenizer_calls, lambda: run(max_length=64))
    assert_misses(tokenizer_calls, lambda: run(max_length=12), reference)
    swapped = assert_misses(tokenizer_calls, lambda: run(max_length=64, prompt_column="completion",
                                                         completion_column="prompt"), reference)
    assert swapped["input_ids"] != reference["input_ids"]


def test_chat(cache_dir, load_tokenizer, tokenizer_calls, tmp_path):
    def run(**data: Any) -> Any:
        return prepare("generation", conversations(), load_tokenizer("gpt2"), **data)

    reference = assert_cached_rerun(cache_dir, tokenizer_calls, lambda: run(max_length=64))
    with_system = assert_misses(tokenizer_calls, lambda: run(max_length=64, system_prompt="Be brief."), reference)
    assert all(len(new) > len(old) for new, old in zip(with_system["input_ids"], reference["input_ids"]))
    template = tmp_path / "plain.jinja"
    template.write_text("{%- for message in messages %}{{ message['role'] + ': ' }}"
                        "{%- if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + eos_token }}"
                        "{% endgeneration %}{%- else %}{{ message['content'] + '\n' }}{%- endif %}{%- endfor %}"
                        "{%- if add_generation_prompt %}{{ 'assistant: ' }}{%- endif %}", encoding="utf-8")
    own_template = assert_misses(tokenizer_calls, lambda: run(max_length=64, chat_template=str(template)), reference)
    # An edited template file under the same name is another template.
    template.write_text(template.read_text(encoding="utf-8").replace("': '", "' > '"), encoding="utf-8")
    assert_misses(tokenizer_calls, lambda: run(max_length=64, chat_template=str(template)), own_template)


def test_token_classification(cache_dir, load_tokenizer, tokenizer_calls):
    def run(kind: str = "wordpiece", tokenizer_kwargs: dict[str, Any] | None = None, **data: Any) -> Any:
        return prepare("token_classification", entities(), load_tokenizer(kind, **(tokenizer_kwargs or {})), **data)

    reference = assert_cached_rerun(cache_dir, tokenizer_calls, lambda: run(max_length=32))
    every_piece = assert_misses(tokenizer_calls, lambda: run(max_length=32, label_all_tokens=True), reference)
    assert every_piece["input_ids"] == reference["input_ids"]
    relabelled = assert_misses(tokenizer_calls, lambda: run(max_length=32, label_names=["O", "B-PER", "B-LOC"]),
                               reference)
    assert relabelled["input_ids"] == reference["input_ids"]
    assert_misses(tokenizer_calls, lambda: run(max_length=4), reference)
    # GPT-2's tokenizer splits pre-tokenized words differently with a space put before each (RoBERTa's too).
    gpt2 = {"tokenizer_class": "GPT2Tokenizer"}
    plain = assert_cached_rerun(cache_dir, tokenizer_calls, lambda: run("gpt2", gpt2, max_length=32))
    assert_misses(tokenizer_calls, lambda: run("gpt2", {**gpt2, "add_prefix_space": True}, max_length=32), plain)


def test_scoring_a_checkpoint_keys_on_the_data_tag_names_too(cache_dir, load_tokenizer, tokenizer_calls):
    """Tag ids in the data are mapped to the checkpoint's tags through the data's tag names: the same checkpoint on
    the same ids named in another order is other labels."""
    import datasets
    from transformers import BertConfig, BertForTokenClassification

    from finetune.config.loading import load_recipe
    from finetune.data.sources import LoadedData
    from finetune.tasks import get_task

    checkpoint_tags = ["O", "B-LOC", "B-PER"]
    config = BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                        intermediate_size=8, num_labels=3, id2label=dict(enumerate(checkpoint_tags)))
    model = BertForTokenClassification(config)
    ids = {name: index for index, name in enumerate(checkpoint_tags)}
    rows = [{"tokens": row["tokens"], "ner_tags": [ids[tag] for tag in row["ner_tags"]]} for row in entities()]

    def score(data_tags: list[str]) -> Any:
        recipe = load_recipe(base={"task": "token_classification"}, flags={
            "model": {"name": "unused"}, "data": {"label_names": data_tags, "max_length": 32}})
        task = get_task(recipe)
        loaded = LoadedData(train=None, eval={"validation": datasets.Dataset.from_list(rows)})
        task.setup(loaded)
        tokenizer = load_tokenizer("wordpiece")
        task.adopt_model(model, tokenizer, "checkpoint")
        return task.tokenize(loaded.eval["validation"], tokenizer)

    reference = assert_cached_rerun(cache_dir, tokenizer_calls, lambda: score(checkpoint_tags))
    swapped = assert_misses(tokenizer_calls, lambda: score(["O", "B-PER", "B-LOC"]), reference)
    assert {label for row in swapped["labels"] for label in row} == {-100, 0, 1, 2}


def test_editing_a_helper_module_of_the_tokenization_misses(cache_dir, tmp_path, monkeypatch):
    """`map_cached(code=[module])`: the helpers a family's tokenization calls (chat templates, label alignment,
    packing) are keyed by their source, as the family's own module is."""
    import importlib

    import datasets

    from finetune.data.caching import map_cached

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "helper_for_cache_test.py").write_text("SUFFIX = '!'\n", encoding="utf-8")
    helper = importlib.import_module("helper_for_cache_test")
    split = datasets.Dataset.from_dict({"text": ["a", "b", "c"]})

    def shout(rows: dict[str, list]) -> dict[str, list]:
        return {"loud": [text + helper.SUFFIX for text in rows["text"]]}

    def run() -> Any:
        return map_cached(split, shout, tokenizer=None, columns=["text"], settings={}, code=[helper])

    first = run()
    again = run()
    assert again.cache_files == first.cache_files
    (tmp_path / "helper_for_cache_test.py").write_text("SUFFIX = '?'\n", encoding="utf-8")
    importlib.reload(helper)
    edited = run()
    assert edited.cache_files != first.cache_files
    assert edited["loud"] == ["a?", "b?", "c?"]


def test_tokenizer_settings_changed_after_loading_are_in_the_key(load_tokenizer):
    """A translation tokenizer's languages (mBART, NLLB) are set on the object, not where it was loaded from."""
    from finetune.data.caching import tokenizer_identity

    tokenizer = load_tokenizer("t5")
    before = tokenizer_identity(tokenizer)
    assert tokenizer_identity(load_tokenizer("t5")) == before  # a fresh load of the same files: the same key
    tokenizer.src_lang = "de_DE"
    assert tokenizer_identity(tokenizer) != before
