"""Tag schemes other than IOB2: IO tags without prefixes (PER, LOC) are scored as one entity per run of the same
type, BIOES (and BILOU) by seqeval's strict IOBES mode; F1 checked against hand counts, then end to end on a tiny
model (check, training, predict)."""

from __future__ import annotations

import json

import pytest

from finetune.tasks.token_labels import entity_scores, prefixed
from finetune.tasks.token_predict import make_ner_rows, write_conll
from tests.helpers import invoke

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_io_tags_are_one_entity_per_run_of_the_same_type():
    gold = [["PER", "PER", "O", "LOC", "ORG", "ORG"], ["O", "LOC", "LOC", "PER"]]
    predicted = [["PER", "O", "O", "LOC", "ORG", "ORG"], ["O", "LOC", "LOC", "LOC"]]
    # Gold entities: PER(0-1), LOC(3), ORG(4-5); LOC(1-2), PER(3): 5. Predicted: PER(0), LOC(3), ORG(4-5);
    # LOC(1-3): 4. Right: LOC(3) and ORG(4-5): 2. Precision 2/4, recall 2/5, F1 2 * 0.5 * 0.4 / 0.9 = 4/9.
    scores = entity_scores(predicted, gold)
    assert scores["precision"] == pytest.approx(0.5) and scores["recall"] == pytest.approx(0.4)
    assert scores["f1"] == pytest.approx(4 / 9)
    assert scores["ORG_f1"] == 1.0 and scores["PER_number"] == 2 and scores["LOC_f1"] == 0.5  # 1 of 2 each way
    assert scores["accuracy"] == pytest.approx(8 / 10)  # the tags themselves: 8 of the 10 right
    # Read raw, seqeval takes each tag's first letter as a prefix: ORG would be outside and PER type "ER".
    assert not {key for key in scores if key.startswith(("ER_", "OC_", "RG_"))}


def test_adjacent_io_entities_of_different_types_stay_apart():
    assert prefixed(["PER", "LOC", "LOC", "O", "PER"]) == ["B-PER", "B-LOC", "I-LOC", "O", "B-PER"]
    assert entity_scores([["PER", "LOC", "LOC"]], [["PER", "LOC", "LOC"]])["f1"] == 1.0


def test_bioes_is_scored_strictly():
    gold = [["B-PER", "E-PER", "O", "S-LOC"], ["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"]]
    predicted = [["B-PER", "I-PER", "O", "S-LOC"], ["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"]]
    # Gold: PER(0-1), LOC(3); PER(0), LOC(2-4): 4. Predicted B-PER I-PER has no E-: not an entity in IOBES, so 3
    # predicted, all right. Precision 1, recall 3/4, F1 6/7 (conlleval's lenient reading would give 1).
    scores = entity_scores(predicted, gold)
    assert (scores["precision"], scores["recall"]) == (1.0, 0.75) and scores["f1"] == pytest.approx(6 / 7)
    assert scores["PER_recall"] == 0.5 and scores["LOC_f1"] == 1.0


def test_bilou_reads_as_bioes():
    assert prefixed(["U-PER", "B-LOC", "L-LOC"]) == ["S-PER", "B-LOC", "E-LOC"]
    assert entity_scores([["U-PER", "B-LOC", "L-LOC"]], [["U-PER", "B-LOC", "L-LOC"]])["f1"] == 1.0


def _as_io(tags: list[str]) -> list[str]:
    return [tag.partition("-")[2] or tag for tag in tags]


def _as_bioes(tags: list[str]) -> list[str]:
    result = []
    for index, tag in enumerate(tags):
        last = index + 1 == len(tags) or not tags[index + 1].startswith("I-")
        if tag.startswith("B-"):
            result.append(("S-" if last else "B-") + tag[2:])
        elif tag.startswith("I-"):
            result.append(("E-" if last else "I-") + tag[2:])
        else:
            result.append(tag)
    return result


# BIOES needs longer: a first name is B- or S- by what follows it (in 4 epochs the tiny model tags S-PER throughout).
@pytest.mark.parametrize(("scheme", "epochs"), [(_as_io, 4), (_as_bioes, 10)], ids=["io", "bioes"])
def test_a_run_on_other_schemes_learns_and_predicts_entities(cli, tmp_path, scheme, epochs):
    from tests.builders import build_tiny_bert

    train, validation = make_ner_rows(300, seed=0), make_ner_rows(60, seed=1)
    model = build_tiny_bert(tmp_path / "model", [" ".join(row["tokens"]) for row in train])
    files = []
    for name, rows in (("train", train), ("validation", validation)):
        converted = [{"tokens": row["tokens"], "ner_tags": scheme(row["ner_tags"])} for row in rows]
        files.append(write_conll(tmp_path / f"{name}.conll", converted))
    common = ["ner", "--model", model, "--train-file", files[0], "--validation-file", files[1], "--max-length", "48"]
    result = cli([*common, "--dry-run"])
    assert result.exit_code == 0, result.output
    people = sum(tag == "B-PER" for row in train for tag in row["ner_tags"])
    assert f"PER {people}" in result.output  # entities counted in the scheme's own terms
    result = invoke([*common, "--batch-size", 16, "--seed", 0, "--epochs", epochs, "--learning-rate", 3e-3,
                     "--output-dir", tmp_path / "run"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["eval_f1"] >= 0.8 and {"eval_PER_f1", "eval_LOC_f1"} <= set(metrics), metrics
    result = cli(["predict", tmp_path / "run", "--text", "we met alice smith in paris today", "--json"])
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert {(entity["text"], entity["type"]) for entity in record["entities"]} == {("alice smith", "PER"),
                                                                                    ("paris", "LOC")}
