"""Named metrics equal the reference implementations on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from finetune.errors import UserError
from finetune.tasks import metrics

rng = np.random.default_rng(0)
LABELS = rng.integers(0, 2, 200).tolist()
PREDICTIONS = [label if rng.random() < 0.7 else 1 - label for label in LABELS]
MULTI_LABELS = rng.integers(0, 3, 200).tolist()
MULTI_PREDICTIONS = rng.integers(0, 3, 200).tolist()
SCORES = rng.uniform(0, 5, 200)
NOISY = (SCORES + rng.normal(0, 1, 200)).tolist()


@pytest.mark.parametrize("name, reference", [
    ("accuracy", lambda p, r: sklearn.metrics.accuracy_score(r, p)),
    ("f1", lambda p, r: sklearn.metrics.f1_score(r, p)),
    ("precision", lambda p, r: sklearn.metrics.precision_score(r, p)),
    ("recall", lambda p, r: sklearn.metrics.recall_score(r, p)),
    ("matthews_correlation", lambda p, r: sklearn.metrics.matthews_corrcoef(r, p)),
])
def test_classification_metrics_equal_scikit_learn(name, reference):
    result = metrics.load(name).compute(predictions=PREDICTIONS, references=LABELS)
    assert result == {name: pytest.approx(reference(PREDICTIONS, LABELS), abs=1e-12)}


def test_macro_f1_for_multi_class():
    result = metrics.load("f1").compute(predictions=MULTI_PREDICTIONS, references=MULTI_LABELS, average="macro")
    assert result["f1"] == pytest.approx(sklearn.metrics.f1_score(MULTI_LABELS, MULTI_PREDICTIONS, average="macro"))


def test_correlations_equal_scipy():
    assert metrics.load("pearson").compute(predictions=NOISY, references=SCORES.tolist())["pearson"] == \
        pytest.approx(scipy.stats.pearsonr(SCORES, NOISY)[0], abs=1e-12)
    assert metrics.load("spearmanr").compute(predictions=NOISY, references=SCORES.tolist())["spearmanr"] == \
        pytest.approx(scipy.stats.spearmanr(SCORES, NOISY)[0], abs=1e-12)


def test_add_batch_then_compute_equals_one_call():
    metric = metrics.load("accuracy")
    metric.add_batch(predictions=PREDICTIONS[:50], references=LABELS[:50])
    metric.add_batch(predictions=PREDICTIONS[50:], references=LABELS[50:])
    assert metric.compute() == metrics.load("accuracy").compute(predictions=PREDICTIONS, references=LABELS)


def test_glue_metric_sets():
    from finetune.data.glue import get_glue_task

    result = metrics.compute(get_glue_task("mrpc").metrics, PREDICTIONS, LABELS)
    assert set(result) == {"f1", "accuracy"}


def test_unknown_metric_offline_is_a_user_error():
    with pytest.raises(UserError, match="Did you mean 'accuracy'"):
        metrics.load("acuracy")


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        metrics.load("accuracy").compute(predictions=[0, 1], references=[0])


# --- more metrics against their reference libraries (mutation-tested: README, Development) ---------------------

def test_mse_equals_scikit_learn():
    assert metrics.load("mse").compute(predictions=NOISY, references=SCORES.tolist()) == \
        {"mse": pytest.approx(sklearn.metrics.mean_squared_error(SCORES, NOISY), abs=1e-12)}


@pytest.mark.parametrize("name, reference", [
    ("precision", sklearn.metrics.precision_score),
    ("recall", sklearn.metrics.recall_score),
    ("f1", sklearn.metrics.f1_score),
])
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_averaged_metrics_equal_scikit_learn(name, reference, average):
    result = metrics.load(name).compute(predictions=MULTI_PREDICTIONS, references=MULTI_LABELS, average=average)
    assert result == {name: pytest.approx(reference(MULTI_LABELS, MULTI_PREDICTIONS, average=average), abs=1e-12)}


def test_a_class_never_predicted_scores_zero_precision_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's UndefinedMetricWarning would be an error here
        precision = metrics.load("precision").compute(predictions=[0, 0, 0], references=[0, 1, 2], average="macro")
        recall = metrics.load("recall").compute(predictions=[0, 1, 2], references=[0, 0, 0], average="macro")
    assert precision == {"precision": pytest.approx(1 / 9)}  # class 0: 1/3; classes 1 and 2: 0
    assert recall == {"recall": pytest.approx(1 / 9)}
    assert metrics.load("precision").compute(predictions=[0, 0], references=[1, 1]) == {"precision": 0.0}


HYPOTHESES = ["the cat sat on the mat", "a dog runs in the park today", "hello world"]
ONE_REFERENCE = ["the cat is on the mat", "the dog runs in the park", "hello there world"]
SEVERAL = [["the cat is on the mat", "there is a cat on the mat"], "the dog runs in the park",
           ["hello world", "hi world", "hello there world"]]


def test_bleu_and_chrf_equal_sacrebleu_with_one_reference():
    import sacrebleu

    assert metrics.load("bleu").compute(predictions=HYPOTHESES, references=ONE_REFERENCE) == \
        {"bleu": pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [ONE_REFERENCE]).score, abs=1e-9)}
    assert metrics.load("sacrebleu").compute(predictions=HYPOTHESES, references=ONE_REFERENCE) == \
        {"bleu": pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [ONE_REFERENCE]).score, abs=1e-9)}
    assert metrics.load("chrf").compute(predictions=HYPOTHESES, references=ONE_REFERENCE) == \
        {"chrf": pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, [ONE_REFERENCE]).score, abs=1e-9)}


def test_several_references_per_example_are_padded_with_the_first():
    import sacrebleu

    streams = [["the cat is on the mat", "the dog runs in the park", "hello world"],
               ["there is a cat on the mat", "the dog runs in the park", "hi world"],
               ["the cat is on the mat", "the dog runs in the park", "hello there world"]]
    assert metrics._reference_streams(SEVERAL) == streams
    assert metrics._reference_streams([]) == []
    bleu = metrics.load("bleu").compute(predictions=HYPOTHESES, references=SEVERAL)["bleu"]
    assert bleu == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, streams).score, abs=1e-9)
    assert bleu > metrics.load("bleu").compute(predictions=HYPOTHESES, references=ONE_REFERENCE)["bleu"]
    chrf = metrics.load("chrf").compute(predictions=HYPOTHESES, references=SEVERAL)["chrf"]
    assert chrf == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, streams).score, abs=1e-9)


def test_sacrebleu_options_reach_sacrebleu():
    import sacrebleu

    upper = [reference.upper() for reference in ONE_REFERENCE]
    result = metrics.load("bleu").compute(predictions=HYPOTHESES, references=upper, lowercase=True)
    assert result["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [ONE_REFERENCE]).score, abs=1e-9)
    chrf = metrics.load("chrf").compute(predictions=HYPOTHESES, references=ONE_REFERENCE, word_order=2)
    assert chrf["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, [ONE_REFERENCE], word_order=2).score)


def test_sentences_are_split_one_per_line_for_rouge_lsum():
    assert metrics.split_sentences("  One. Two!  Three? four\nfive.  ") == "One.\nTwo!\nThree?\nfour\nfive."
    assert metrics.split_sentences("3.5 is a number. Yes") == "3.5 is a number.\nYes"
    assert metrics.split_sentences("") == ""


SUMMARIES = ["The cats were running. They ran fast.", "A storm hit the coast. Homes flooded."]
TARGETS = ["The cat runs. It is fast.", ["Storms hit coasts. Many homes were flooded.", "A storm hit the coast."]]


def test_rouge_equals_rouge_score_with_stemming_and_the_best_reference():
    from rouge_score import rouge_scorer

    kinds = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(kinds, use_stemmer=True)
    expected = {kind: [] for kind in kinds}
    for summary, target in zip(SUMMARIES, TARGETS):
        targets = [target] if isinstance(target, str) else target
        for kind in kinds:  # score_multi keeps the best reference
            best = max(scorer.score(metrics.split_sentences(t), metrics.split_sentences(summary))[kind].fmeasure
                       for t in targets)
            expected[kind].append(100 * best)
    per_example = metrics.rouge_per_example(SUMMARIES, TARGETS)
    assert per_example == {kind: pytest.approx(values) for kind, values in expected.items()}
    assert metrics.load("rouge").compute(predictions=SUMMARIES, references=TARGETS) == \
        {kind: pytest.approx(sum(values) / 2) for kind, values in expected.items()}
    first_only = metrics.rouge_per_example(SUMMARIES[1:], [TARGETS[1][0]])
    assert per_example["rouge2"][1] > first_only["rouge2"][0]  # the second reference is the better one
    swapped = metrics.rouge_per_example(["It is fast. The cat runs."], ["The cat runs. It is fast."])
    assert swapped["rougeLsum"] == [pytest.approx(100.0)]  # Lsum reads sentence by sentence: the order is free
    assert swapped["rougeL"][0] < 100.0


def test_rouge_without_stemming_scores_word_forms_apart():
    stemmed = metrics.load("rouge").compute(predictions=["cats running"], references=["cat runs"])
    plain = metrics.load("rouge").compute(predictions=["cats running"], references=["cat runs"], use_stemmer=False)
    assert stemmed["rouge1"] == pytest.approx(100.0)
    assert plain["rouge1"] == 0.0


def test_rouge_of_no_examples_is_zero():
    assert metrics.load("rouge").compute(predictions=[], references=[]) == \
        {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "rougeLsum": 0.0}


@pytest.mark.parametrize("metric, higher", [
    ("eval_accuracy", True), ("f1", True), ("eval_loss", False), ("validation_perplexity", False),
    ("eval_mse", False), ("mae", False), ("eval_gen_len", False), ("eval_rougeL", True), ("loss_scale_x", True),
])
def test_which_direction_is_better(metric, higher):
    assert metrics.higher_is_better(metric) is higher


def test_available_metrics_are_listed_sorted():
    assert metrics.available() == ["accuracy", "bleu", "chrf", "f1", "matthews_correlation", "mse", "pearson",
                                   "precision", "recall", "rouge", "sacrebleu", "spearmanr"]


def test_unknown_metric_offline_names_the_offline_ones():
    with pytest.raises(UserError) as error:
        metrics.load("perplexity")
    assert str(error.value) == (
        "Unknown metric 'perplexity'. Metrics available offline: accuracy, bleu, chrf, f1, matthews_correlation, "
        "mse, pearson, precision, recall, rouge, sacrebleu, spearmanr. Other `evaluate` metrics need the Hugging "
        "Face Hub, which cannot be reached.")


def test_compute_starts_over_after_each_result():
    metric = metrics.load("accuracy")
    assert metric.compute(predictions=[1, 1], references=[1, 1]) == {"accuracy": 1.0}
    metric.add_batch(predictions=[0], references=[1])
    assert metric.compute() == {"accuracy": 0.0}  # the earlier examples are gone
    with pytest.raises(ValueError, match="accuracy: 1 predictions but 0 references"):
        metric.compute(predictions=[1])


def test_compute_merges_several_metrics():
    result = metrics.compute(["accuracy", "f1", "recall"], [1, 0, 1, 1], [1, 0, 0, 1])
    assert result == {"accuracy": 0.75, "f1": pytest.approx(0.8), "recall": 1.0}


def test_resampling_scorer_equals_scoring_the_resample():
    rows = [1, 1, 0]  # a bootstrap resample: repeats allowed
    score = metrics.resampling_scorer(["rouge", "bleu"], SUMMARIES, TARGETS)
    resampled_predictions = [SUMMARIES[row] for row in rows]
    resampled_references = [TARGETS[row] for row in rows]
    direct = metrics.compute(["rouge", "bleu"], resampled_predictions, resampled_references)
    assert score(rows) == {kind: pytest.approx(value) for kind, value in direct.items()}
    assert set(metrics.resampling_scorer(["bleu"], SUMMARIES, TARGETS)([0, 1])) == {"bleu"}


def test_labelled_resampler_scores_the_resampled_records():
    records = [{"label": "pos", "prediction": "pos"}, {"label": "neg", "prediction": "pos"},
               {"label": "neg", "prediction": "neg"}]
    ids = {"neg": 0, "pos": 1}.__getitem__
    score = metrics.labelled_resampler(lambda p, r: metrics.compute(["accuracy", "f1"], p, r), records, ids)
    assert score is not None
    assert score([0, 2]) == {"accuracy": 1.0, "f1": 1.0}
    assert score([1, 1, 0]) == {"accuracy": pytest.approx(1 / 3), "f1": pytest.approx(0.5)}
    assert metrics.labelled_resampler(lambda p, r: {}, [], ids) is None
    assert metrics.labelled_resampler(lambda p, r: {}, records + [{"prediction": "pos"}], ids) is None
