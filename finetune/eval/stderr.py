"""Standard errors of evaluation metrics, as lm-evaluation-harness reports them (`<metric>_stderr,none`).

A bootstrap, as lm-eval's `bootstrap_stderr`: the split's examples are resampled with replacement, the task scores
each resample with its own metrics, and the standard error is the sample standard deviation of those scores. Like
lm-eval, corpus-level text metrics (BLEU, chrF) use at most 100 resamples, because each one recomputes the metric.
A metric the task cannot score on a resample (losses, perplexity, generation length) gets "N/A", lm-eval's word.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

NOT_AVAILABLE = "N/A"
_EXPENSIVE = ("bleu", "chrf", "ter")  # lm-eval: min(bootstrap_iters, 100) for these
_SEED = 1234  # fixed: the same predictions give the same standard errors


def bootstrap_stderr(scorer: Callable[[Sequence[int]], dict[str, float]] | None, n: int, metrics: Sequence[str],
                     iterations: int) -> dict[str, float | str]:
    """{metric: standard error or "N/A"} for each of `metrics`, from `iterations` resamples of the n examples."""
    if scorer is None or n < 2 or iterations < 2:
        return dict.fromkeys(metrics, NOT_AVAILABLE)
    import numpy as np

    if any(name.startswith(_EXPENSIVE) for name in metrics):
        iterations = min(iterations, 100)
    rng = np.random.default_rng(_SEED)
    samples: dict[str, list[float]] = {name: [] for name in metrics}
    for _ in range(iterations):
        scores = scorer(rng.integers(0, n, size=n).tolist())
        for name in metrics:
            if name in scores:
                samples[name].append(scores[name])
    errors: dict[str, float | str] = {}
    for name, values in samples.items():
        finite = [value for value in values if math.isfinite(value)]
        errors[name] = float(np.std(finite, ddof=1)) if len(finite) == iterations else NOT_AVAILABLE
    return errors
