"""Token classification (`finetune ner`): tags aligned to sub-tokens, entity F1 that moves when a tiny model learns a
toy NER language, predictions per sentence, entities from `predict`, the run in transformers' pipeline, `evaluate`,
`check`, the data layouts (CoNLL, JSON lists, ClassLabel) and the messages bad data gets; and WNUT-17 end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.config.schema import Recipe
from finetune.errors import UserError
from finetune.tasks import get_task
from finetune.tasks.token_labels import IGNORED, align_labels, continuation_ids, entity_scores
from finetune.tasks.token_predict import make_ner_rows, write_conll
from tests.conftest import requires_data
from tests.helpers import invoke, write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread

TAGS = ["O", "B-LOC", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def ner_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ner-data")
    return (write_conll(folder / "train.conll", make_ner_rows(300, seed=0)),
            write_conll(folder / "validation.conll", make_ner_rows(60, seed=1)))


@pytest.fixture(scope="module")
def ner_model(tmp_path_factory) -> Path:
    from tests.builders import build_tiny_bert

    texts = [" ".join(row["tokens"]) for row in make_ner_rows(300, seed=0)]
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-ner-bert", texts)


def _train(model: Path, files: tuple[Path, Path], output: Path, *extra: object) -> dict:
    result = invoke(["ner", "--model", model, "--train-file", files[0], "--validation-file", files[1],
                     "--max-length", 48, "--batch-size", 16, "--seed", 0, "--output-dir", output, *extra])
    assert result.exit_code == 0, result.output
    return json.loads((output / "metrics.json").read_text())


@pytest.fixture(scope="module")
def trained(ner_model, ner_files, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ner-runs") / "run"
    _train(ner_model, ner_files, run, "--epochs", 4, "--learning-rate", 3e-3)
    return run


# ---- labels on sub-tokens ----------------------------------------------------------------------------------------


def test_a_words_tag_goes_to_its_first_sub_token_and_the_rest_are_ignored():
    # [CLS] paris is parisi ##a ##n [SEP]: words 0, 1, 2 (split in three)
    word_ids = [None, 0, 1, 2, 2, 2, None]
    assert align_labels(word_ids, [1, 0, 2]) == [IGNORED, 1, 0, 2, IGNORED, IGNORED, IGNORED]
    # label_all_tokens: every sub-token, a B- tag continuing as I- (as run_ner.py does)
    assert align_labels(word_ids, [1, 0, 2], True, continuation_ids(TAGS)) == [IGNORED, 1, 0, 2, 3, 3, IGNORED]
    assert continuation_ids(TAGS) == [0, 1, 3, 3]  # B-LOC has no I-LOC: it stays B-LOC


@pytest.mark.parametrize("label_all_tokens", [False, True])
def test_tokenized_labels_follow_the_tokenizers_word_ids(ner_model, tmp_path, label_all_tokens):
    import datasets
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ner_model)
    words = ["alice", "smith", "parisian", "paris"]
    assert len(tokenizer(["parisian"], is_split_into_words=True)["input_ids"]) > 3  # several sub-tokens
    split = datasets.Dataset.from_dict({"tokens": [words], "ner_tags": [["B-PER", "I-PER", "O", "B-LOC"]]})
    recipe = Recipe(task="token_classification", model={"name": str(ner_model)},
                    data={"label_all_tokens": label_all_tokens})
    task = get_task(recipe)
    task.setup(_loaded(split))
    encoded = task.tokenize(split, tokenizer)[0]
    word_ids = tokenizer(words, is_split_into_words=True).word_ids()
    expected = [IGNORED if word is None else task.label2id[["B-PER", "I-PER", "O", "B-LOC"][word]]
                for word in word_ids]
    if not label_all_tokens:
        expected = [label if word is not None and word_ids.index(word) == position else IGNORED
                    for position, (word, label) in enumerate(zip(word_ids, expected))]
    assert encoded["labels"] == expected


def test_entity_scores_count_whole_entities_per_type():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    predicted = [["B-PER", "O", "O", "B-LOC"], ["B-LOC", "O"]]  # the person cut short: a wrong entity
    scores = entity_scores(predicted, gold)
    assert scores["f1"] == pytest.approx(2 / 3) and scores["LOC_f1"] == 1.0 and scores["PER_f1"] == 0.0
    assert scores["accuracy"] == pytest.approx(5 / 6) and scores["LOC_number"] == 2


# ---- training, predictions, predict, pipeline, evaluate, check -----------------------------------------------------


def test_entity_f1_rises_from_near_zero_when_the_model_learns(trained, ner_model, ner_files, tmp_path):
    untrained = _train(ner_model, ner_files, tmp_path / "one-step", "--max-steps", 1, "--learning-rate", 1e-6)
    learned = json.loads((trained / "metrics.json").read_text())
    # A random head finds an entity here and there (0.23 on this tiny model); trained, nearly all of them.
    assert untrained["eval_f1"] < 0.4 and learned["eval_f1"] > 0.9
    assert learned["eval_PER_f1"] > 0.8 and learned["eval_LOC_f1"] > 0.8 and learned["eval_accuracy"] > 0.95
    assert "pipeline_tag: token-classification" in (trained / "README.md").read_text()


def test_predictions_are_written_per_sentence(trained, ner_files):
    records = [json.loads(line) for line in (trained / "predictions" / "validation.jsonl").read_text().splitlines()]
    validation = make_ner_rows(60, seed=1)
    assert [record["tokens"] for record in records] == [row["tokens"] for row in validation]  # file order
    assert [record["tags"] for record in records] == [row["ner_tags"] for row in validation]
    assert all(len(record["predicted"]) == len(record["tokens"]) for record in records)
    right = sum(record["predicted"] == record["tags"] for record in records)
    assert right >= 50


def test_predict_prints_entities_with_type_and_score(trained):
    result = invoke(["predict", trained, "--text", "we met alice smith in paris today", "--text", "we went"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "> we met alice smith in paris today"
    spans = [line.split("\t") for line in lines[1:3]]
    assert [(span, kind) for span, kind, _ in spans] == [("alice smith", "PER"), ("paris", "LOC")]
    assert all(0.0 < float(score) <= 1.0 for _, _, score in spans)
    assert lines[3:] == ["> we went", "(no entities)"]


def test_the_run_loads_in_the_transformers_pipeline_and_agrees_with_predict(trained):
    from transformers import pipeline

    text = "bob taylor visited rome and oslo"
    tagger = pipeline("token-classification", model=str(trained), aggregation_strategy="first")
    expected = [(entity["word"], entity["entity_group"], entity["start"], entity["end"]) for entity in tagger(text)]
    assert [kind for _, kind, _, _ in expected] == ["PER", "LOC", "LOC"]
    result = invoke(["predict", trained, "--text", text, "--json"])
    (record,) = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [(e["text"], e["type"], e["start"], e["end"]) for e in record["entities"]] == expected


def test_evaluate_scores_the_run_as_training_did(trained, tmp_path):
    result = invoke(["evaluate", trained, "--output-dir", tmp_path / "results"])
    assert result.exit_code == 0, result.output
    results = json.loads(next((tmp_path / "results").rglob("*.json")).read_text())
    (entry,) = results["results"].values()
    metrics = json.loads((trained / "metrics.json").read_text())
    assert entry["f1,none"] == pytest.approx(metrics["eval_f1"], abs=1e-6)


def test_check_reports_columns_tags_and_entities(ner_model, ner_files, tmp_path):
    result = invoke(["ner", "--model", ner_model, "--train-file", ner_files[0], "--validation-file", ner_files[1],
                     "--output-dir", tmp_path / "run", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "tokens: tokens, tags: ner_tags" in result.output
    assert "4: O, B-LOC, B-PER, I-PER" in result.output
    assert "entities (train)" in result.output and "PER" in result.output


def test_lora_trains_a_token_classification_adapter(ner_model, ner_files, tmp_path):
    pytest.importorskip("peft")
    _train(ner_model, ner_files, tmp_path / "lora", "--lora", "--max-steps", 2)
    adapter = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "TOKEN_CLS"
    result = invoke(["predict", tmp_path / "lora", "--text", "alice in paris"])
    assert result.exit_code == 0 and result.output.startswith("> alice in paris"), result.output


# ---- data layouts and bad data ---------------------------------------------------------------------------------


def _loaded(train, validation=None):
    from finetune.data.sources import LoadedData

    return LoadedData(train=train, eval={"validation": validation} if validation is not None else {}, source="test")


def _setup(split, **data):
    task = get_task(Recipe(task="token_classification", model={"name": "unused"}, data=data))
    task.setup(_loaded(split))
    return task


def test_json_lists_with_tag_names_ids_with_label_names_and_classlabel_features(tmp_path):
    import datasets

    from finetune.config.schema import DataSection
    from finetune.data.sources import load_data

    rows = [{"words": ["Paris", "is"], "tags": ["B-LOC", "O"]}, {"words": ["Bob"], "tags": ["B-PER"]}]
    loaded = load_data(DataSection(train_file=str(write_jsonl(tmp_path / "train.jsonl", rows))))
    assert _setup(loaded.train).label_names == ["O", "B-LOC", "B-PER"]  # O first, then by entity type

    ids = datasets.Dataset.from_dict({"tokens": [["Paris", "is"]], "ner_tags": [[1, 0]]})
    task = _setup(ids, label_names=["O", "B-LOC"])
    assert task.label_names == ["O", "B-LOC"] and task.tag_index(1) == 1

    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"]))})
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"tokens": [["Ann", "Lee"]], "ner_tags": [[1, 2]]},
                                                              features=features)}).save_to_disk(tmp_path / "hub")
    hub_like = load_data(DataSection(dataset=str(tmp_path / "hub")))
    assert _setup(hub_like.train).label_names == ["O", "B-PER", "I-PER"]


def test_bad_rows_are_errors_that_name_the_row(tmp_path):
    import datasets

    def data(tokens, tags):
        return datasets.Dataset.from_dict({"tokens": tokens, "ner_tags": tags})

    with pytest.raises(UserError, match="Row 2 of the train data has 2 tokens but 1 tags"):
        _setup(data([["a"], ["b", "c"]], [["O"], ["B-X"]]))
    with pytest.raises(UserError, match=r"Tag 'B-MISC' in row 1 of the train data is not one of the tags"):
        _setup(data([["a", "b"]], [["O", "B-MISC"]]), label_names=["O", "B-PER"])
    with pytest.raises(UserError, match="has tag ids .* pass --label-names"):
        _setup(data([["a", "b"]], [[0, 1]]))
    with pytest.raises(UserError, match="Cannot tell which column holds the tags.*--tags-column"):
        _setup(datasets.Dataset.from_dict({"tokens": [["a"]], "entity": [["O"]]}))


# ---- real data -----------------------------------------------------------------------------------------------------


@requires_data
def test_wnut17_end_to_end_on_a_few_hundred_sentences(data_dir, tmp_path):
    from finetune.data.conll import read_conll
    from tests.builders import build_tiny_bert

    folder = data_dir / "ner" / "wnut17"
    texts = [" ".join(tokens) for tokens in read_conll(folder / "wnut17train.conll")["tokens"][:1000]]
    model = build_tiny_bert(tmp_path / "tiny", texts, vocab_size=1000)
    metrics = _train(model, (folder / "wnut17train.conll", folder / "emerging.dev.conll"), tmp_path / "run",
                     "--max-train-samples", 300, "--max-eval-samples", 100, "--epochs", 1, "--learning-rate", 1e-3)
    assert {"eval_f1", "eval_precision", "eval_recall", "eval_accuracy", "eval_person_f1",
            "eval_location_number"} <= metrics.keys()
    assert metrics["eval_accuracy"] > 0.8  # mostly O: a model that learned anything gets the O words right
    records = (tmp_path / "run" / "predictions" / "validation.jsonl").read_text().splitlines()
    assert len(records) == 100 and json.loads(records[0])["tokens"][:3] == ["Stabilized", "approach", "or"]
    evaluated = invoke(["evaluate", tmp_path / "run", "--benchmark", "wnut17", "--data-dir", data_dir,
                        "--limit", 50, "--output-dir", tmp_path / "results"])
    assert evaluated.exit_code == 0, evaluated.output
    scored = {path.stem: json.loads(path.read_text()) for path in (tmp_path / "results").rglob("*.json")}
    assert {"dev", "test"} <= {key for result in scored.values() for key in result["results"]}
