"""Label handling as a user meets it, as fast unit tests (mutation-tested: README, Development).

Which checkpoint labels match which data labels (tasks/label_matching.py) and which label mistakes are refused
before training (tasks/label_hygiene.py). No model is built: a checkpoint's config is a plain namespace.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from finetune.errors import UserError
from finetune.tasks.label_hygiene import label_coverage, refuse_label_variants
from finetune.tasks.label_matching import (
    checkpoint_label_names,
    label_permutation,
    permuted_metrics,
    sorted_like_training,
)


def config(*names: str, problem_type: str | None = None) -> SimpleNamespace:
    """A checkpoint's config as transformers writes it: id2label keyed by int, num_labels."""
    return SimpleNamespace(num_labels=len(names), id2label=dict(enumerate(names)), problem_type=problem_type)


# --- checkpoint_label_names ------------------------------------------------------------------------------------

def test_named_labels_come_back_in_id_order():
    assert checkpoint_label_names(config("neg", "pos")) == ["neg", "pos"]
    assert checkpoint_label_names(config("0", "1", "2")) == ["0", "1", "2"]


def test_generic_names_and_a_regressor_have_no_names():
    assert checkpoint_label_names(config("LABEL_0", "LABEL_1")) is None
    assert checkpoint_label_names(config("LABEL_0", problem_type="regression")) is None


def test_one_real_name_among_generic_ones_counts_as_named():
    assert checkpoint_label_names(config("LABEL_0", "spam")) == ["LABEL_0", "spam"]


def test_a_regressor_has_no_label_names_even_when_its_output_is_named():
    assert checkpoint_label_names(config("score", problem_type="regression")) is None


def test_a_single_named_label_that_is_not_regression_keeps_its_name():
    assert checkpoint_label_names(config("only", problem_type="single_label_classification")) == ["only"]


def test_generic_pattern_is_anchored_at_both_ends():
    assert checkpoint_label_names(config("LABEL_0x", "LABEL_1")) == ["LABEL_0x", "LABEL_1"]
    assert checkpoint_label_names(config("MY_LABEL_0", "LABEL_1")) == ["MY_LABEL_0", "LABEL_1"]


# --- sorted_like_training --------------------------------------------------------------------------------------

def test_numbers_sort_as_numbers_before_words():
    assert sorted_like_training(["10", "2", "b", "-1", "a"]) == ["-1", "2", "10", "a", "b"]


def test_words_sort_alphabetically():
    assert sorted_like_training(["pos", "neg", "neutral"]) == ["neg", "neutral", "pos"]
    assert sorted_like_training(["X10", "X9", "1"]) == ["1", "X10", "X9"]  # a letter makes it a word


# --- label_permutation -----------------------------------------------------------------------------------------

def test_same_order_needs_no_permutation():
    assert label_permutation(False, ["neg", "pos"], config("neg", "pos"), "ckpt") is None


def test_other_order_is_matched_by_name():
    assert label_permutation(False, ["neg", "pos"], config("pos", "neg"), "ckpt") == [1, 0]
    assert label_permutation(False, ["a", "b", "c"], config("c", "a", "b"), "ckpt") == [1, 2, 0]


def test_data_label_missing_from_checkpoint_is_refused_naming_both_lists():
    with pytest.raises(UserError) as error:
        label_permutation(False, ["neg", "pos", "meh"], config("pos", "neg", "other"), "runs/x")
    assert str(error.value) == (
        "Labels do not match: the data's label(s) meh are not among the checkpoint's. Checkpoint runs/x: pos, neg, "
        "other; data: neg, pos, meh. Evaluate on data with the same labels (or set data.label_names).")


def test_checkpoint_label_missing_from_data_is_refused():
    with pytest.raises(UserError) as error:
        label_permutation(False, ["neg", "pos"], config("pos", "neg", "x", "y"), "runs/x")
    assert str(error.value).startswith(
        "Labels do not match: the checkpoint's label(s) x, y are not in the data. Checkpoint runs/x: pos, neg, x, y;")


def test_several_missing_labels_are_all_named():
    with pytest.raises(UserError, match=r"the data's label\(s\) c, d are not among"):
        label_permutation(False, ["a", "c", "d"], config("a", "b", "e"), "runs/x")


def test_regression_data_and_regressor_need_no_permutation():
    assert label_permutation(True, [], config("LABEL_0", problem_type="regression"), "ckpt") is None


def test_regression_data_on_a_classifier_is_refused():
    with pytest.raises(UserError) as error:
        label_permutation(True, [], config("neg", "pos"), "runs/x")
    assert str(error.value) == ("runs/x has 2 output(s) but the data is a regression (one score) task. Evaluate a "
                                "checkpoint trained for this task.")


def test_classification_data_on_a_regressor_is_refused():
    with pytest.raises(UserError) as error:
        label_permutation(False, ["neg", "pos"], config("LABEL_0", problem_type="regression"), "runs/x")
    assert str(error.value) == ("runs/x has 1 output(s) but the data is a 2-class task. Evaluate a checkpoint "
                                "trained for this task.")


def test_generic_names_are_assumed_in_data_order_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="finetune"):
        assert label_permutation(False, ["neg", "pos"], config("LABEL_0", "LABEL_1"), "runs/x") is None
    assert caplog.messages == [
        "runs/x has no label names (LABEL_0, ...): assuming they are in the data's order (neg, pos)."]


def test_generic_names_with_another_label_count_are_refused():
    with pytest.raises(UserError) as error:
        label_permutation(False, ["a", "b", "c"], config("LABEL_0", "LABEL_1"), "runs/x")
    assert str(error.value) == "runs/x has 2 unnamed labels but the data has 3 (a, b, c)."


# --- permuted_metrics ------------------------------------------------------------------------------------------

def accuracy_and_inputs(predictions, references):
    return {"accuracy": float(np.mean(np.asarray(predictions) == np.asarray(references))),
            "predictions": list(predictions), "references": list(references)}


def test_permuted_metrics_score_in_the_data_label_ids():
    # Checkpoint ids: 0=pos, 1=neg; data ids: 0=neg, 1=pos. to_data maps checkpoint id -> data id.
    to_data = np.array([1, 0])
    logits = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])  # checkpoint predicts pos, neg, pos
    # label_ids arrive in checkpoint ids too (the evaluation data was mapped to them): pos, neg, neg
    prediction = SimpleNamespace(predictions=logits, label_ids=[0, 1, 1])
    result = permuted_metrics(accuracy_and_inputs, to_data)(prediction)
    assert result["predictions"] == [1, 0, 1]
    assert result["references"] == [1, 0, 0]
    assert result["accuracy"] == pytest.approx(2 / 3)


def test_permuted_metrics_take_the_logits_of_a_tuple_output():
    to_data = np.array([1, 0])
    prediction = SimpleNamespace(predictions=(np.array([[0.1, 0.9]]), np.array([[5.0, -5.0]])), label_ids=[1])
    result = permuted_metrics(accuracy_and_inputs, to_data)(prediction)
    assert result["predictions"] == [0]
    assert result["references"] == [0]


# --- refuse_label_variants -------------------------------------------------------------------------------------

def test_case_and_space_variants_are_refused_with_the_variants_named():
    with pytest.raises(UserError) as error:
        refuse_label_variants(["positive", "Positive ", "negative"], "label")
    assert str(error.value) == (
        "Labels in column 'label' differ only by case or spaces: 'Positive ' / 'positive'. Write each class one way "
        "in the data (or list the classes in data.label_names).")


def test_distinct_labels_and_numbers_pass():
    refuse_label_variants(["positive", "negative", "neutral", 1, 2, 1], "label")
    refuse_label_variants(["pos", "pos", "neg"], "label")  # repeats of the same spelling are one class


def test_at_most_four_variants_of_three_classes_are_shown():
    values = ["a", "A", " a", "a ", " A ", "b", "B", "c", "C", "d", "D"]
    with pytest.raises(UserError) as error:
        refuse_label_variants(values, "y")
    message = str(error.value)
    assert "' A ' / ' a' / 'A' / 'a';" in message  # sorted, the fifth variant ('a ') left out
    assert "'a '" not in message
    assert "'B' / 'b'; 'C' / 'c'" in message
    assert "'D'" not in message


def test_long_variants_are_shown_up_to_300_characters():
    labels = [f"{word}-{'x' * 20}" for word in ("alpha", "beta", "gamma")]
    values = labels + [label.upper() for label in labels] + [label.title() for label in labels]
    with pytest.raises(UserError) as error:
        refuse_label_variants(values, "label")
    shown = "; ".join(" / ".join(repr(v) for v in sorted({label, label.upper(), label.title()})) for label in labels)
    assert 200 < len(shown) <= 300
    assert f"spaces: {shown}. Write" in str(error.value)


def test_inner_spaces_are_a_different_label():
    refuse_label_variants(["not good", "notgood"], "label")


# --- label_coverage --------------------------------------------------------------------------------------------

NAMES = ["neg", "pos", "neutral"]
IDS = {"neg": 0, "pos": 1, "neutral": 2}


def test_coverage_returns_classes_only_evaluation_has_and_warns(caplog):
    values = [("train", "neg"), ("train", "pos"), ("validation", "neutral"), ("validation", "neg")]
    with caplog.at_level(logging.WARNING, logger="finetune"):
        assert label_coverage(values, IDS.get, NAMES, "label", has_train=True, inferred=True) == ["neutral"]
    assert caplog.messages == ["Labels ['neutral'] appear in the evaluation data but never in training: the model "
                               "cannot predict them."]


def test_untrained_classes_come_in_label_id_order():
    names = ["a", "b", "c", "d"]
    values = [("train", 0), ("train", 1), ("test", 3), ("validation", 2)]
    assert label_coverage(values, int, names, "label", has_train=True, inferred=False) == ["c", "d"]


def test_full_coverage_returns_nothing_and_does_not_warn(caplog):
    values = [("train", "neg"), ("train", "pos"), ("validation", "pos")]
    with caplog.at_level(logging.WARNING, logger="finetune"):
        assert label_coverage(values, IDS.get, NAMES, "label", has_train=True, inferred=True) == []
    assert caplog.text == ""


def test_one_class_training_set_is_refused_naming_it():
    values = [("train", "pos"), ("train", "pos"), ("validation", "neg")]
    with pytest.raises(UserError) as error:
        label_coverage(values, IDS.get, NAMES, "sentiment", has_train=True, inferred=True)
    assert str(error.value) == ("The training data has one class only ('pos') in column 'sentiment': a classifier "
                                "needs examples of at least two.")


def test_empty_training_set_is_refused():
    with pytest.raises(UserError, match=r"one class only \('none'\)"):
        label_coverage([("validation", "neg")], IDS.get, NAMES, "label", has_train=True, inferred=True)


def test_evaluation_only_data_is_not_checked_for_coverage():
    assert label_coverage([("test", "neg")], IDS.get, NAMES, "label", has_train=False, inferred=True) == []


def test_inferred_labels_are_checked_for_variants_across_splits():
    values = [("train", "pos"), ("train", "neg"), ("validation", "POS")]
    with pytest.raises(UserError, match="Labels in column 'sentiment' differ only by case"):
        label_coverage(values, lambda v: IDS.get(v.lower()), NAMES, "sentiment", has_train=True, inferred=True)


def test_declared_label_names_skip_the_variant_check():
    values = [("train", "pos"), ("train", "POS")]
    assert label_coverage(values, lambda v: 0 if v == "pos" else 1, ["pos", "POS"], "label", has_train=True,
                          inferred=False) == []


def test_variants_are_checked_even_without_training_data():
    with pytest.raises(UserError, match="differ only by case"):
        label_coverage([("test", "pos"), ("test", "Pos")], IDS.get, NAMES, "label", has_train=False, inferred=True)
