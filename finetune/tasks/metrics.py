"""Named metrics that work offline, behind the same call shape as the `evaluate` library.

`evaluate.load("accuracy")` downloads a metric script from the Hub, which fails on an offline machine and costs
seconds online. The metrics a recipe names are implemented here on the reference libraries themselves
(scikit-learn, scipy), so the numbers are theirs by construction. A name this module does not know is handed to
`evaluate.load`, so users keep the whole Hub catalogue when they are online.

    metric = load("f1")
    metric.compute(predictions=[0, 1], references=[0, 1])  # {"f1": 1.0}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from finetune.errors import UserError, did_you_mean


def _accuracy(predictions, references, **_) -> dict[str, float]:
    from sklearn.metrics import accuracy_score

    return {"accuracy": float(accuracy_score(references, predictions))}


def _f1(predictions, references, average: str = "binary", **_) -> dict[str, float]:
    from sklearn.metrics import f1_score

    return {"f1": float(f1_score(references, predictions, average=average))}


def _precision(predictions, references, average: str = "binary", **_) -> dict[str, float]:
    from sklearn.metrics import precision_score

    return {"precision": float(precision_score(references, predictions, average=average, zero_division=0))}


def _recall(predictions, references, average: str = "binary", **_) -> dict[str, float]:
    from sklearn.metrics import recall_score

    return {"recall": float(recall_score(references, predictions, average=average, zero_division=0))}


def _matthews(predictions, references, **_) -> dict[str, float]:
    from sklearn.metrics import matthews_corrcoef

    return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}


def _pearson(predictions, references, **_) -> dict[str, float]:
    from scipy.stats import pearsonr

    return {"pearson": float(pearsonr(references, predictions)[0])}


def _spearman(predictions, references, **_) -> dict[str, float]:
    from scipy.stats import spearmanr

    return {"spearmanr": float(spearmanr(references, predictions)[0])}


def _mse(predictions, references, **_) -> dict[str, float]:
    from sklearn.metrics import mean_squared_error

    return {"mse": float(mean_squared_error(references, predictions))}


def _reference_streams(references: Sequence[Any]) -> list[list[str]]:
    """Per-example references (a string or a list of strings) as sacrebleu's reference streams.

    sacrebleu wants the same number of references for every example; an example with fewer repeats its first
    reference, which changes neither clipped n-gram counts nor the closest reference length.
    """
    per_example = [[reference] if isinstance(reference, str) else list(reference) for reference in references]
    width = max((len(refs) for refs in per_example), default=1)
    padded = [refs + [refs[0]] * (width - len(refs)) for refs in per_example]
    return [list(stream) for stream in zip(*padded)]


def _bleu(predictions, references, **kwargs) -> dict[str, float]:
    import sacrebleu

    return {"bleu": float(sacrebleu.corpus_bleu(list(predictions), _reference_streams(references), **kwargs).score)}


def _chrf(predictions, references, **kwargs) -> dict[str, float]:
    import sacrebleu

    return {"chrf": float(sacrebleu.corpus_chrf(list(predictions), _reference_streams(references), **kwargs).score)}


def split_sentences(text: str) -> str:
    """One sentence per line, as ROUGE-Lsum expects (a dependency-free stand-in for nltk's sent_tokenize)."""
    import re

    return "\n".join(part.strip() for part in re.split(r"(?<=[.!?])\s+", text.strip()) if part.strip())


def rouge_per_example(predictions: Sequence[str], references: Sequence[Any],
                      use_stemmer: bool = True) -> dict[str, list[float]]:
    """ROUGE-1/2/L/Lsum F-measure x 100 of each example (rouge-score, stemming on); the best reference counts."""
    from rouge_score import rouge_scorer

    kinds = ("rouge1", "rouge2", "rougeL", "rougeLsum")
    scorer = rouge_scorer.RougeScorer(list(kinds), use_stemmer=use_stemmer)
    per_example: dict[str, list[float]] = {kind: [] for kind in kinds}
    for prediction, reference in zip(predictions, references):
        targets = [reference] if isinstance(reference, str) else list(reference)
        scores = scorer.score_multi([split_sentences(target) for target in targets], split_sentences(prediction))
        for kind in kinds:
            per_example[kind].append(100.0 * scores[kind].fmeasure)
    return per_example


def _rouge(predictions, references, use_stemmer: bool = True, **_) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F-measure x 100 over the examples."""
    per_example = rouge_per_example(predictions, references, use_stemmer)
    count = max(len(predictions), 1)
    return {kind: sum(values) / count for kind, values in per_example.items()}


# Classification metrics take class ids; pearson, spearmanr and mse take floats (regression).
_REGISTRY: dict[str, Callable[..., dict[str, float]]] = {
    "accuracy": _accuracy,
    "f1": _f1,
    "precision": _precision,
    "recall": _recall,
    "matthews_correlation": _matthews,
    "pearson": _pearson,
    "spearmanr": _spearman,
    "mse": _mse,
    "bleu": _bleu,
    "sacrebleu": _bleu,
    "chrf": _chrf,
    "rouge": _rouge,
}


# Metrics where lower is better (the suffix counts: eval_loss, validation_perplexity). Everything else: higher.
LOWER_IS_BETTER = ("loss", "perplexity", "mse", "mae", "gen_len")


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` is better: picks the best checkpoint and ranks leaderboards."""
    return not metric.endswith(LOWER_IS_BETTER)


def available() -> list[str]:
    return sorted(_REGISTRY)


@dataclass
class Metric:
    """The subset of `evaluate.EvaluationModule` the toolkit uses: `add_batch`, `compute`."""

    name: str
    function: Callable[..., dict[str, float]]
    _predictions: list[Any] = field(default_factory=list)
    _references: list[Any] = field(default_factory=list)

    def add_batch(self, *, predictions: Sequence[Any], references: Sequence[Any]) -> None:
        self._predictions.extend(predictions)
        self._references.extend(references)

    def compute(self, *, predictions: Sequence[Any] | None = None, references: Sequence[Any] | None = None,
                **kwargs: Any) -> dict[str, float]:
        if predictions is not None:
            self.add_batch(predictions=predictions, references=references or [])
        predictions, references = self._predictions, self._references
        self._predictions, self._references = [], []
        if len(predictions) != len(references):
            raise ValueError(f"{self.name}: {len(predictions)} predictions but {len(references)} references")
        return self.function(list(predictions), list(references), **kwargs)


def load(name: str) -> Any:
    """A local metric by name; an unknown name goes to `evaluate.load` (the Hub), failing clearly offline."""
    if name in _REGISTRY:
        return Metric(name, _REGISTRY[name])
    from finetune.hub import hub_is_reachable

    if not hub_is_reachable():
        raise UserError(
            f"Unknown metric '{name}'.{did_you_mean(name, _REGISTRY)} Metrics available offline: "
            f"{', '.join(available())}. Other `evaluate` metrics need the Hugging Face Hub, which cannot be reached."
        )
    import evaluate

    try:
        return evaluate.load(name)
    except Exception as error:  # evaluate raises FileNotFoundError, ValueError or HTTP errors by version
        raise UserError(f"Unknown metric '{name}' ({error}).{did_you_mean(name, _REGISTRY)}") from error


def compute(names: Sequence[str], predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
    """Several metrics on the same predictions, merged into one dict."""
    results: dict[str, float] = {}
    for name in names:
        results.update(load(name).compute(predictions=predictions, references=references))
    return results


def resampling_scorer(names: Sequence[str], predictions: Sequence[Any],
                      references: Sequence[Any]) -> Callable[[Sequence[int]], dict[str, float]]:
    """`compute(names, ...)` of any resample of these examples (row indices, repeats allowed), for bootstrap
    standard errors. ROUGE is a mean of per-example scores, computed once; corpus metrics (BLEU, chrF, F1, ...) are
    recomputed on each resample."""
    import numpy as np

    per_example = {kind: np.asarray(values) for kind, values in
                   (rouge_per_example(predictions, references) if "rouge" in names else {}).items()}
    corpus = [name for name in names if name != "rouge"]

    def score(rows: Sequence[int]) -> dict[str, float]:
        result = {kind: float(values[list(rows)].mean()) for kind, values in per_example.items()}
        result.update(compute(corpus, [predictions[row] for row in rows], [references[row] for row in rows]))
        return result

    return score


def labelled_resampler(score: Callable[[list[Any], list[Any]], dict[str, float]], records: list[dict[str, Any]],
                       to_id: Callable[[Any], Any]) -> Callable[[Sequence[int]], dict[str, float]] | None:
    """`score(predictions, references)` of any resample of prediction records with "label" and "prediction" (class
    names mapped by `to_id`), for bootstrap standard errors; None when a record has no label."""
    if not records or any("label" not in record for record in records):
        return None
    predicted = [to_id(record["prediction"]) for record in records]
    gold = [to_id(record["label"]) for record in records]
    return lambda rows: score([predicted[row] for row in rows], [gold[row] for row in rows])

