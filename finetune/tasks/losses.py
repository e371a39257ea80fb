"""Token losses of generative models, computed so that they do not depend on how examples are batched, and the
Trainer that reports perplexity with every evaluation loss.

The Trainer's evaluation loss is a mean of per-batch means, which moves with the batch size whenever examples
differ in length. Here every scored token (label != -100) counts once: per example for the predictions files, and
over the whole split for `finetune evaluate`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from finetune.tasks.lm_inputs import IGNORE_INDEX

if TYPE_CHECKING:
    from transformers import Trainer


def perplexity(loss: float) -> float:
    """exp(mean token loss); infinite rather than an overflow error for a diverged model."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


def _summed_losses(model: Any, dataset: Any, collator: Any, batch_size: int,
                   shift: bool) -> Iterator[tuple[float, int]]:
    """(summed negative log-likelihood, scored tokens) per example, in dataset order."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(dataset), batch_size):
            batch = collator([dataset[index] for index in range(start, min(start + batch_size, len(dataset)))])
            batch = {key: value.to(device) for key, value in batch.items() if hasattr(value, "to")}
            labels = batch.pop("labels")
            with torch.inference_mode():
                logits = model(**batch).logits
            if shift:  # causal LM: position t predicts token t + 1, as inside the model's own loss
                logits, labels = logits[:, :-1], labels[:, 1:]
            losses = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels,
                                                       ignore_index=IGNORE_INDEX, reduction="none")
            counts = (labels != IGNORE_INDEX).sum(dim=1)
            yield from zip(losses.double().sum(dim=1).tolist(), counts.tolist())
    finally:
        model.train(was_training)


def example_losses(model: Any, dataset: Any, collator: Any, batch_size: int,
                   shift: bool = True) -> list[tuple[float, int]]:
    """(mean token loss, scored tokens) per example, for the predictions file."""
    return [(total / count if count else float("nan"), count)
            for total, count in _summed_losses(model, dataset, collator, batch_size, shift)]


def token_loss(model: Any, dataset: Any, collator: Any, batch_size: int, shift: bool) -> float:
    """Mean negative log-likelihood over every scored token of the split."""
    total, count = 0.0, 0
    for example_total, example_count in _summed_losses(model, dataset, collator, batch_size, shift):
        total += example_total
        count += example_count
    return total / count if count else float("nan")


def mean_token_loss(losses: list[tuple[float, int]]) -> float:
    """token_loss from example_losses' (mean, count) pairs of the same split, without another pass over it."""
    count = sum(tokens for _, tokens in losses)
    return sum(loss * tokens for loss, tokens in losses if tokens) / count if count else float("nan")


@functools.cache
def perplexity_trainer() -> type[Trainer]:
    """The causal LM's Trainer: perplexity next to every evaluation loss."""
    from transformers import Trainer

    from finetune.compat import TrainerHooks

    class CausalLMTrainer(TrainerHooks, Trainer):
        """Reports perplexity next to every evaluation loss (logged, in metrics and in trainer_state.json)."""

        def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
            output = super().evaluation_loop(*args, **kwargs)
            metrics = output.metrics if output.metrics is not None else {}
            for key, value in list(metrics.items()):
                if key.endswith("_loss"):
                    metrics[f"{key[:-len('_loss')]}_perplexity"] = perplexity(value)
            return output

    return CausalLMTrainer
