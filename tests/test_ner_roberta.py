"""NER on a byte-level BPE (RoBERTa-style) tokenizer: training, `check`, `evaluate` and `predict` all load the
tokenizer with add_prefix_space, so a checkpoint whose tokenizer files do not say so (roberta-base's own, or a
checkpoint trained elsewhere) scores and tags as it did in training."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from finetune.tasks.token_predict import make_ner_rows, write_conll
from tests.helpers import invoke

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def roberta_run(tmp_path_factory):
    """A tiny RoBERTa trained on the toy NER language, and a copy of the run whose tokenizer_config.json says
    add_prefix_space false, as roberta-base's does."""
    from tests.builders import build_tiny_roberta

    work = tmp_path_factory.mktemp("ner-roberta")
    train, validation = make_ner_rows(300, seed=0), make_ner_rows(60, seed=1)
    model = build_tiny_roberta(work / "tiny-roberta", [" ".join(row["tokens"]) for row in train])
    files = [write_conll(work / "train.conll", train), write_conll(work / "validation.conll", validation)]
    result = invoke(["ner", "--model", model, "--train-file", files[0], "--validation-file", files[1],
                     "--max-length", 48, "--batch-size", 16, "--seed", 0, "--epochs", 4, "--learning-rate", 3e-3,
                     "--output-dir", work / "run"])
    assert result.exit_code == 0, result.output
    plain = shutil.copytree(work / "run", work / "plain-tokenizer")
    config_file = plain / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    assert config["add_prefix_space"] is True  # training loaded (and so saved) it with the prefix space
    config_file.write_text(json.dumps({**config, "add_prefix_space": False}))
    return work / "run", plain, files[1], model


def test_the_tiny_roberta_is_deterministic_and_byte_level(tmp_path):
    from transformers import AutoTokenizer

    from tests.builders import build_tiny_roberta

    texts = [" ".join(row["tokens"]) for row in make_ner_rows(50, seed=0)]
    first, second = build_tiny_roberta(tmp_path / "a", texts), build_tiny_roberta(tmp_path / "b", texts)
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()
    tokenizer = AutoTokenizer.from_pretrained(first)
    assert type(tokenizer).__name__ == "RobertaTokenizer" and tokenizer.add_prefix_space is False
    assert tokenizer(["alice", "paris"], is_split_into_words=True).tokens() == [
        "<s>", "a", "l", "i", "c", "e", "p", "a", "r", "i", "s", "</s>"]  # glued together without the space
    spaced = AutoTokenizer.from_pretrained(first, add_prefix_space=True)
    assert spaced(["alice", "paris"], is_split_into_words=True).tokens() == ["<s>", "Ġalice", "Ġparis", "</s>"]


def test_a_roberta_ner_run_learns(roberta_run):
    run_dir, _, _, _ = roberta_run
    assert json.loads((run_dir / "metrics.json").read_text())["eval_f1"] >= 0.8


def test_evaluate_scores_as_training_did_whatever_the_tokenizer_files_say(cli, roberta_run, tmp_path):
    run_dir, plain, validation, _ = roberta_run
    trained = json.loads((run_dir / "metrics.json").read_text())["eval_f1"]
    for checkpoint in (run_dir, plain):
        output = tmp_path / checkpoint.name
        result = cli(["evaluate", checkpoint, "--dataset", validation, "--output-dir", output])
        assert result.exit_code == 0, result.output
        text = "\n".join(path.read_text() for path in output.rglob("*.json"))
        scores = [float(value) for value in re.findall(r'"f1,none": ([0-9.e-]+)', text)]
        assert scores and scores[0] == pytest.approx(trained), checkpoint.name


def test_predict_tags_as_training_did_whatever_the_tokenizer_files_say(cli, roberta_run):
    run_dir, plain, _, _ = roberta_run
    entities = []
    for checkpoint in (run_dir, plain):
        result = cli(["predict", checkpoint, "--text", "paris is where we met alice smith", "--json"])
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout.strip().splitlines()[-1])
        entities.append([(entity["text"], entity["type"]) for entity in record["entities"]])
    assert entities[0] == entities[1] and ("paris", "LOC") in entities[0]  # the first word: no space before it


def test_check_counts_the_tokens_training_will_see(cli, roberta_run):
    _, _, validation, model = roberta_run
    from transformers import AutoTokenizer

    from finetune.data.conll import read_conll

    sentences = read_conll(validation)[:]["tokens"]
    spaced = AutoTokenizer.from_pretrained(model, add_prefix_space=True)
    lengths = [len(ids) for ids in spaced(sentences, is_split_into_words=True)["input_ids"]]
    result = cli(["ner", "--model", model, "--train-file", validation, "--max-length", "48", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"mean {sum(lengths) / len(lengths):.1f}, max {max(lengths)}" in result.output
