"""Class imbalance: `train.class_weights` as a loss the classifier's Trainer computes, and the `check` warning.

Single-label: PyTorch's weighted cross-entropy, `CrossEntropyLoss(weight=w)`: the batch loss is
sum_i w[y_i] * -log p_i[y_i] / sum_i w[y_i]. Multi-label: `BCEWithLogitsLoss(pos_weight=w)`: each label's positive
term is multiplied by w[j], the mean runs over every (example, label) cell. `auto` is inverse frequency: w[c] =
N / (K * n_c) for K classes (scikit-learn's "balanced"); for multi-label, negatives / positives of each label (the
value PyTorch's documentation suggests). A class absent from the training data gets weight 1 (it never occurs there).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError

if TYPE_CHECKING:
    from transformers import Trainer

RARE_SHARE = 0.05  # `check` warns when the rarest class is under this share of the training labels


def resolve_class_weights(setting: str | list[float] | None, counts: list[int], rows: int,
                          multi_label: bool, names: list[str]) -> list[float] | None:
    """The weight per label id from `train.class_weights` and the training label counts (per label id)."""
    if setting is None:
        return None
    if isinstance(setting, list):
        if len(setting) != len(names):
            raise UserError(f"train.class_weights has {len(setting)} weights but there are {len(names)} labels "
                            f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''}): give one per label, "
                            f"in label order, or class_weights=auto.")
        return [float(weight) for weight in setting]
    if multi_label:
        return [(rows - count) / count if count else 1.0 for count in counts]
    total = sum(counts)
    return [total / (len(counts) * count) if count else 1.0 for count in counts]


def balance_lines(names: list[str], counts: list[int], setting: Any) -> list[tuple[str, str]]:
    """`check` lines: the training examples per label, and the imbalance warning when there is one."""
    total = sum(counts) or 1
    shown = ", ".join(f"{name} {count} ({count / total:.0%})" for name, count in zip(names, counts))
    line = imbalance_line(names, counts, setting)
    return [("labels (train)", shown)] + ([line] if line else [])


def imbalance_line(names: list[str], counts: list[int], setting: Any) -> tuple[str, str] | None:
    """A `check` line when the rarest class is under RARE_SHARE of the training labels, saying what to do."""
    total = sum(counts)
    if not total or not counts:
        return None
    rarest = min(range(len(counts)), key=lambda index: counts[index])
    share = counts[rarest] / total
    if share >= RARE_SHARE:
        return None
    if setting is not None:
        return "imbalance", f"rarest label {names[rarest]} is {share:.1%} of the training labels; weighted by " \
                            f"train.class_weights ({setting if isinstance(setting, str) else 'given'})"
    return "warning", (f"imbalanced labels: the rarest, {names[rarest]}, is {share:.1%} of the training labels. "
                       f"Weight the loss by class with --class-weights auto (recipe: train.class_weights: auto, or "
                       f"one weight per label)")


def weighted_loss(logits: Any, labels: Any, weights: Any, multi_label: bool) -> Any:
    """The batch loss with per-class weights (see the module docstring)."""
    import torch

    if multi_label:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.to(logits.dtype).float(),
                                                                    pos_weight=weights)
    return torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1),
                                             weight=weights)


@functools.cache
def classification_trainer() -> type[Trainer]:
    from transformers import Trainer

    class ClassificationTrainer(Trainer):
        # Classifier heads average their loss over the batch and ignore num_items_in_batch, although their forward
        # takes **kwargs (which makes the Trainer assume the model scaled the loss for gradient accumulation). Said
        # so, the Trainer divides by the accumulation steps: without it, --gradient-accumulation-steps N reported
        # N times the loss and clipped N times larger gradients.
        loss_is_scaled_for_ga = False

    return ClassificationTrainer


def weighted_trainer(weights: list[float] | None, multi_label: bool, own_loss: bool = False) -> type[Trainer]:
    """The classifier's Trainer, computing the weighted loss when there are weights. `own_loss`: compute the loss
    here even without weights (then plain cross-entropy, the mean over the labels that are not -100), so that it is a
    batch mean whatever the model's head does. Token classifiers need it: most heads (BERT's) return a batch mean,
    some (GPT-NeoX's) one scaled by the tokens of the whole accumulated batch, and the Trainer must know which."""
    base = classification_trainer()
    if weights is None and not own_loss:
        return base

    class WeightedLossTrainer(base):  # type: ignore[valid-type, misc]
        class_weights = tuple(weights) if weights is not None else None

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            import torch

            labels = inputs.pop("labels")
            outputs = model(**inputs)
            weight = (torch.tensor(self.class_weights, dtype=torch.float32, device=outputs.logits.device)
                      if self.class_weights is not None else None)
            loss = weighted_loss(outputs.logits, labels, weight, multi_label)
            return (loss, outputs) if return_outputs else loss

    WeightedLossTrainer.__name__ = base.__name__
    return WeightedLossTrainer
