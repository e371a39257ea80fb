"""Multi-label classification: any number of labels per example (GoEmotions: 1-5 of 28 emotions).

Part of the classification family (`finetune classify`): the task becomes multi-label when the label cells are
lists (JSON, parquet, a Hub `Sequence(ClassLabel)`) or when `data.multi_label` says that text cells hold several
labels separated by `data.label_separator` ('2,3'). Integer ids index `data.label_names` (a list, or a file with one
name per line). The model is transformers' own multi-label head (`problem_type: multi_label_classification`:
one sigmoid per label, BCE-with-logits loss); a label is predicted when its probability reaches the threshold
(`train.threshold`, or the one `train.tune_threshold` picks on the validation data), which is saved in the model's
config.json as `multi_label_threshold`. Metrics: micro and macro F1, precision and recall, and subset accuracy (every
label of the example right); macro F1 picks the best checkpoint.

`train.tune_threshold` is one key with three values, not a second switch: false, `global` (one threshold for all
labels; `true`, its first spelling, still means it) or `per_label` (one per label, for labels as unequal as
GoEmotions'). A separate `per_label` switch would have a meaning only with tuning on, and a combination nobody can
mean. Per label, `multi_label_threshold` is a list by label id, which `finetune predict`, `finetune evaluate` and a
plain `AutoConfig` load read as they read the single number.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.data.scan import distinct_values, value_counts
from finetune.errors import UserError, preview
from finetune.tasks.classification import ClassificationTask, _column, _label_text
from finetune.tasks.multi_label_scores import (
    PROBLEM_TYPE,
    THRESHOLD_KEY,
    Threshold,
    best_threshold,
    best_thresholds,
    multi_label_scores,
    sigmoid,
)

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer

    from finetune.data.sources import LoadedData

logger = logging.getLogger("finetune")


class MultiLabelClassificationTask(ClassificationTask):
    multi_label = True

    # ---- labels --------------------------------------------------------------------------------------------

    def _parts(self, value: Any, split_name: str) -> list[str]:
        """One cell's labels as texts: a list, a delimited string ('2,3'), or one value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise UserError(f"The {split_name} data has a missing (empty or NaN) label in column "
                            f"'{self.label_column}'. Remove those rows or fill them in (an empty list for none).")
        if isinstance(value, (list, tuple)):
            items = list(value)
        elif isinstance(value, str):
            items = value.split(self.recipe.data.label_separator)
        else:
            items = [value]
        return [text for item in items if (text := _label_text(item).strip())]

    def _infer_labels(self, splits: list[tuple[str, datasets.Dataset]], glue: Any) -> None:
        from finetune.tasks.label_hygiene import refuse_label_variants
        from finetune.tasks.label_matching import sorted_like_training

        feature = splits[0][1].features[self.label_column]
        self.is_regression = False
        values = [(name, self._parts(value, name)) for name, split in splits
                  for value in distinct_values(split, self.label_column)]  # each distinct cell once (Arrow)
        inner = getattr(feature, "feature", None)
        if self.recipe.data.label_names:
            self.label_names = list(self.recipe.data.label_names)
        elif inner is not None and getattr(inner, "names", None):  # Sequence(ClassLabel): the data names them
            self.label_names = list(inner.names)
        else:
            distinct = {text for _, parts in values for text in parts}
            refuse_label_variants(distinct, self.label_column)
            self.label_names = sorted_like_training(sorted(distinct))
        self.label2id = {name: index for index, name in enumerate(self.label_names)}
        if len(self.label_names) < 2:
            raise UserError(f"Only one label ({preview(self.label_names)}) in column '{self.label_column}': "
                            f"multi-label classification needs at least two.")
        trained: set[int] = set()
        evaluated: set[int] = set()
        for name, parts in values:
            ids = {self._id(text, name) for text in parts}
            (trained if name == "train" else evaluated).update(ids)
        untrained = sorted(evaluated - trained) if splits[0][0] == "train" else []
        self.untrained_labels = [self.label_names[index] for index in untrained]
        if self.untrained_labels:
            logger.warning("Labels %s appear in the evaluation data but never in training: the model cannot "
                           "predict them.", preview(self.untrained_labels))

    def _id(self, text: str, split_name: str = "data") -> int:
        if text in self.label2id:
            return self.label2id[text]
        if text.isdigit() and int(text) < len(self.label_names) and self._labels_are_names():
            return int(text)  # GoEmotions: ids into emotions.txt
        raise UserError(f"Label {preview(text)} in the {split_name} data is not one of the labels "
                        f"{preview(self.label_names)}. Fix the data or set data.label_names (a list or a file).")

    def label_id(self, value: Any, split_name: str = "data") -> int | float:
        raise TypeError("multi-label examples have several label ids: use label_ids")

    def label_ids(self, value: Any, split_name: str = "data") -> list[int]:
        return sorted({self._id(text, split_name) for text in self._parts(value, split_name)})

    def multi_hot(self, value: Any) -> list[float]:
        row = [0.0] * len(self.label_names)
        for index in self.label_ids(value):
            row[index] = 1.0
        return row

    def label_counts(self) -> list[int]:
        """Training examples that carry each label (their sum counts every label of every example)."""
        counts = [0] * len(self.label_names)
        for value, count in value_counts(self.data.train, self.label_column).items():  # distinct cells, counted
            for index in self.label_ids(value, "train"):
                counts[index] += count
        return counts

    @property
    def threshold(self) -> Threshold:
        """The decision threshold: one for every label, or (tuned per label) a list by label id."""
        return getattr(self, "_threshold", self.recipe.train.threshold)

    def pick_threshold(self, probabilities: Any, references: Any, split: str) -> None:
        """train.tune_threshold on the first labelled split: the global threshold with the best macro F1, then, for
        per_label, each label's own best (labels without a positive example here keep the global one)."""
        chosen = best_threshold(probabilities, references)
        self._threshold: Threshold
        if self.recipe.train.tune_threshold == "per_label":
            thresholds = best_thresholds(probabilities, references, fallback=chosen)
            self._threshold = thresholds
            logger.warning("Decision thresholds tuned per label on %s (macro F1): %s.", split,
                           ", ".join(f"{name} {value:.2f}" for name, value in zip(self.label_names, thresholds)))
        else:
            self._threshold = chosen
            logger.warning("Decision threshold tuned on %s: %.2f (macro F1).", split, chosen)

    # ---- model and inputs ----------------------------------------------------------------------------------

    def load_model(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        model, tokenizer = super().load_model()
        model.config.problem_type = PROBLEM_TYPE  # type: ignore[assignment] # sigmoid per label, BCE-with-logits loss (transformers' own)
        return model, tokenizer

    def tokenize(self, split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
        from finetune.data.caching import map_cached

        max_length = self.recipe.data.max_length
        has_labels = self.label_column in split.column_names

        def encode(batch: dict[str, list]) -> dict[str, list]:
            texts = [[str(text) for text in batch[column]] for column in self.text_columns]
            encoded = tokenizer(*texts, truncation=True, max_length=max_length)
            if has_labels:
                encoded["labels"] = [self.multi_hot(value) for value in batch[self.label_column]]
            return encoded

        from finetune.tasks import classification

        return map_cached(split, encode, tokenizer=tokenizer, columns=[*self.text_columns, self.label_column],
                          code=[classification],
                          settings={"max_length": max_length, "text_columns": self.text_columns,
                                    "label_column": self.label_column, "has_labels": has_labels,
                                    "label_names": self.label_names, "multi_label": True,
                                    "separator": self.recipe.data.label_separator})

    # ---- metrics and predictions ---------------------------------------------------------------------------

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("f1_macro", "f1_micro", "precision_macro", "precision_micro", "recall_macro", "recall_micro",
                "subset_accuracy")

    def score(self, predictions: Any, references: Any) -> dict[str, float]:
        """`predictions`: probabilities per label; `references`: multi-hot rows."""
        return multi_label_scores(predictions, references, self.threshold)

    def compute_metrics(self, eval_prediction: Any) -> dict[str, float]:
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        return self.score(sigmoid(logits), eval_prediction.label_ids)

    def write_predictions(self, trainer: Trainer, raw: datasets.Dataset, tokenized: datasets.Dataset,
                          path: Path, metric_key_prefix: str = "eval") -> dict[str, float]:
        """One line per example: its labels, the predicted ones and their probabilities. With
        train.tune_threshold, the first labelled split picks the threshold (its metrics then use it)."""
        import json

        import numpy as np

        from finetune.data.sampling import length_order

        order = np.asarray(length_order(tokenized), dtype=np.int64)
        output = trainer.predict(tokenized.select(order), metric_key_prefix=metric_key_prefix)
        sorted_logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        logits = np.empty_like(sorted_logits)
        logits[order] = sorted_logits
        probabilities = sigmoid(logits)
        references = np.asarray(_column(tokenized, "labels")) if "labels" in tokenized.column_names else None
        metrics = dict(output.metrics or {}) if references is not None else {}
        if references is not None:
            if self.recipe.train.tune_threshold and not hasattr(self, "_threshold"):
                self.pick_threshold(probabilities, references, path.stem)
            metrics.update({f"{metric_key_prefix}_{key}": value
                            for key, value in self.score(probabilities, references).items()})
        if not trainer.is_world_process_zero():
            return metrics
        names = self.label_names
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for row_index, row in enumerate(raw.select_columns(self.text_columns)):
                record: dict[str, Any] = dict(row)
                if references is not None:
                    record["labels"] = [names[index] for index in np.flatnonzero(references[row_index] >= 0.5)]
                hits = np.flatnonzero(probabilities[row_index] >= np.asarray(self.threshold))
                hits = hits[np.argsort(-probabilities[row_index][hits])]
                record["prediction"] = [names[index] for index in hits]
                record["scores"] = {names[index]: round(float(probabilities[row_index][index]), 6) for index in hits}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return metrics

    def after_training(self, trainer: Trainer, run_dir: Path) -> dict[str, Any]:
        """The threshold (per label: the list by label id) goes into the saved config, so `finetune predict`,
        `finetune evaluate` and a plain transformers load decide as the evaluation did; metrics.json names them."""
        config = getattr(trainer.model, "config", None)
        if config is not None:
            setattr(config, THRESHOLD_KEY, self.threshold)
        tuned = "validation" if hasattr(self, "_threshold") else None
        extra: dict[str, Any] = {"threshold": self.threshold, "threshold_tuned_on": tuned}
        if isinstance(self.threshold, list):
            extra["thresholds_by_label"] = dict(zip(self.label_names, self.threshold))
        return {**super().after_training(trainer, run_dir), **extra}

    def check_report(self, data: LoadedData) -> list[tuple[str, str]]:
        lines = super().check_report(data)
        if data.train is not None:
            sizes: dict[int, int] = {}
            for value in _column(data.train, self.label_column):
                size = len(self.label_ids(value, "train"))
                sizes[size] = sizes.get(size, 0) + 1
            lines.insert(1, ("multi-label", f"{len(self.label_names)} labels; labels per example: "
                                            + ", ".join(f"{size}: {count}" for size, count in sorted(sizes.items()))))
        return lines

    # ---- scoring a saved checkpoint ------------------------------------------------------------------------

    def adopt_model(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, checkpoint: str) -> Any:
        """The data's labels in the checkpoint's order (matched by name), and the checkpoint's threshold."""
        from finetune.tasks.label_matching import checkpoint_label_names

        super(ClassificationTask, self).adopt_model(model, tokenizer, checkpoint)
        names = checkpoint_label_names(model.config)
        if model.config.num_labels != len(self.label_names) or (names and set(names) != set(self.label_names)):
            raise UserError(f"Labels do not match: checkpoint {checkpoint} has {model.config.num_labels} "
                            f"({preview(names or [])}); the data {len(self.label_names)} "
                            f"({preview(self.label_names)}). Evaluate on data with the same labels.")
        if names:
            self.label_names = names
            self.label2id = {name: index for index, name in enumerate(names)}
        self._threshold = checkpoint_threshold(model.config, self.recipe.train.threshold, checkpoint)
        return self.compute_metrics

    def relabel(self, tokenized: datasets.Dataset) -> datasets.Dataset:
        return tokenized

    def resampling_scorer(self, records: list[dict[str, Any]]) -> Any:
        return None  # no bootstrap standard errors for multi-label scores (yet)

    def written_label_names(self) -> list[str]:
        return list(self.label_names)

    def evaluation_settings(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        return {"padding_side": tokenizer.padding_side, "max_length": self.recipe.data.max_length,
                "label_names": list(self.label_names), "multi_label": True, "threshold": self.threshold}


ClassificationTask.multi_label_task = MultiLabelClassificationTask  # what classification data with label lists uses


def checkpoint_threshold(config: Any, default: float, checkpoint: str) -> Threshold:
    """A checkpoint's saved threshold: one number, or one per label id (which must match its labels)."""
    saved = getattr(config, THRESHOLD_KEY, None)
    if isinstance(saved, list):
        if len(saved) != config.num_labels:
            raise UserError(f"{checkpoint}: config.json has {len(saved)} thresholds in {THRESHOLD_KEY} for "
                            f"{config.num_labels} labels. Give one per label id, or a single number.")
        return [float(value) for value in saved]
    return float(saved) if saved is not None else default
