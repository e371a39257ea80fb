"""The small interface every task family implements; train.py drives it the same way for all of them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainingArguments

    from finetune.data.sources import LoadedData
    from finetune.config.recipe import Recipe


class Task(ABC):
    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe

    @abstractmethod
    def setup(self, data: LoadedData) -> None:
        """Learn what the data implies (columns, labels) and check it, before the model is loaded."""

    @abstractmethod
    def load_model(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """The pretrained model (with a head sized for the data) and its tokenizer."""

    @abstractmethod
    def tokenize(self, split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
        """Model inputs for one split, unpadded (padding happens per batch in the collator)."""

    @abstractmethod
    def data_collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        """Pads each batch to its own longest example."""

    @abstractmethod
    def compute_metrics(self, eval_prediction: Any) -> dict[str, float]:
        """Metrics from the Trainer's predictions and labels."""

    @property
    @abstractmethod
    def main_metric(self) -> str:
        """The metric that picks the best checkpoint (without the eval_ prefix)."""

    def training_arguments(self, **kwargs: Any) -> TrainingArguments:
        from transformers import TrainingArguments

        return TrainingArguments(**kwargs)

    def trainer_class(self) -> type[Trainer]:
        from transformers import Trainer

        return Trainer

    def before_training(self, trainer: Trainer, run_dir: Path) -> None:
        """Hook: runs once the Trainer exists, before the first step (generation samples use it)."""

    def after_training(self, trainer: Trainer, run_dir: Path) -> dict[str, Any]:
        """Hook: runs after training and the final evaluation; returns extra entries for metrics.json."""
        return {}

    @abstractmethod
    def write_predictions(self, trainer: Trainer, raw: datasets.Dataset, tokenized: datasets.Dataset,
                          path: Path, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Predict on one split and write one JSON line per example; returns the metrics when labels exist."""
