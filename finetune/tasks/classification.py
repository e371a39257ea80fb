"""Sequence classification and regression (GLUE and any labelled text): one or two text columns, one label."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.data.scan import distinct_values, value_counts
from finetune.errors import UserError, preview
from finetune.models.tiny import build_tiny_bert
from finetune.tasks import metrics as metric_registry
from finetune.tasks import smoke_data
from finetune.tasks.base import Flag, PredictRequest, Task, TaskFamily
from finetune.tasks.label_hygiene import label_coverage
from finetune.tasks.multi_label_scores import is_multi_label

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer

    from finetune.config.schema import Recipe
    from finetune.data.sources import LoadedData

# Column names tried in order when the recipe does not name the text columns (pairs first).
_TEXT_COLUMN_GUESSES = (
    ("sentence1", "sentence2"), ("question1", "question2"), ("premise", "hypothesis"), ("question", "sentence"),
    ("text", "text_pair"), ("text",), ("sentence",), ("content",), ("review",), ("document",),
)
_LABEL_COLUMN_GUESSES = ("label", "labels", "score", "target", "class")


class ClassificationTask(Task):
    multi_label = False
    multi_label_task: type[ClassificationTask] | None = None  # several labels per example: set by multi_label.py

    def setup(self, data: LoadedData) -> None:
        self.data = data
        glue = data.glue_task
        splits = self._labelled_splits(data)
        first = splits[0][1]
        columns = list(first.column_names)
        self.text_columns = self._text_columns(columns, glue)
        self.label_column = self.recipe.data.label_column or ("label" if glue else self._guess_label_column(columns))
        for name, split in splits:
            self._require_columns(split, [*self.text_columns, self.label_column], name)
        for name, split in (data.test or {}).items():
            self._require_columns(split, self.text_columns, name)
        if (type(self) is ClassificationTask and glue is None and self.multi_label_task is not None
                and is_multi_label(self.recipe.data, first.features[self.label_column])):
            self.__class__ = self.multi_label_task  # several labels per example: its own task (multi_label.py)
        self._infer_labels(splits, glue)
        if self.recipe.train.class_weights is not None and self.is_regression:
            raise UserError("train.class_weights applies to classification, but these labels are numbers "
                            "(regression). Remove class_weights, or give the labels as classes.")

    # ---- columns -------------------------------------------------------------------------------------------

    @staticmethod
    def _labelled_splits(data: LoadedData) -> list[tuple[str, datasets.Dataset]]:
        splits = ([("train", data.train)] if data.train is not None else []) + list(data.eval.items())
        if not splits:
            raise UserError(f"No labelled data in {data.source}: give a training or validation split.")
        return splits

    def _text_columns(self, columns: list[str], glue: Any) -> list[str]:
        if self.recipe.data.text_columns:
            return list(self.recipe.data.text_columns)
        if glue is not None:
            return list(glue.text_columns)
        for guess in _TEXT_COLUMN_GUESSES:
            if all(column in columns for column in guess):
                return list(guess)
        raise UserError(f"Cannot tell which column holds the text. Columns: {', '.join(columns)}. "
                        f"Pass --text-column NAME (twice for sentence pairs).")

    @staticmethod
    def _guess_label_column(columns: list[str]) -> str:
        for guess in _LABEL_COLUMN_GUESSES:
            if guess in columns:
                return guess
        raise UserError(f"Cannot tell which column holds the label. Columns: {', '.join(columns)}. "
                        f"Pass --label-column NAME.")

    def _require_columns(self, split: datasets.Dataset, needed: list[str], split_name: str) -> None:
        missing = [column for column in needed if column not in split.column_names]
        if missing:
            flag = "--label-column" if missing == [self.label_column] else "--text-column"
            raise UserError(f"Column '{missing[0]}' is not in the {split_name} data ({self.data.source}). "
                            f"Columns there: {', '.join(split.column_names)}. Pass {flag} with one of them.")

    # ---- labels --------------------------------------------------------------------------------------------

    def _infer_labels(self, splits: list[tuple[str, datasets.Dataset]], glue: Any) -> None:
        """Decide regression vs classification and the label order, and check every label before training."""
        feature = splits[0][1].features[self.label_column]
        values = [(name, value) for name, split in splits for value in distinct_values(split, self.label_column)]
        for name, value in values:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise UserError(f"The {name} data has a missing (empty or NaN) label in column "
                                f"'{self.label_column}'. Remove those rows or fill them in.")
        if glue is not None:
            self.is_regression = glue.is_regression
            self.label_names = list(glue.label_names or [])
        elif self.recipe.data.label_names:
            self.is_regression = False
            self.label_names = list(self.recipe.data.label_names)
        elif getattr(feature, "names", None):  # a datasets ClassLabel carries its own names
            self.is_regression = False
            self.label_names = list(feature.names)
        else:
            distinct = {value for _, value in values}
            self.is_regression = any(isinstance(v, float) and not float(v).is_integer() for v in distinct)
            ordered = sorted(distinct, key=lambda v: (isinstance(v, str), v))
            self.label_names = [] if self.is_regression else [_label_text(v) for v in ordered]
        self.label2id = {name: index for index, name in enumerate(self.label_names)}
        if not self.is_regression:
            if len(self.label_names) < 2:
                raise UserError(f"Only one label ({preview(self.label_names)}) in column '{self.label_column}': "
                                f"classification needs at least two.")
            for name, value in values:
                self.label_id(value, name)  # raises on labels outside the label set
            self.untrained_labels = label_coverage(values, self.label_id, self.label_names, self.label_column,
                                                   has_train=splits[0][0] == "train",
                                                   inferred=glue is None and not self.recipe.data.label_names)

    def label_id(self, value: Any, split_name: str = "data") -> int | float:
        if self.is_regression:
            return float(value)
        text = _label_text(value)
        if text in self.label2id:
            return self.label2id[text]
        # Integer class ids index named labels (GLUE stores 0/1 for negative/positive).
        if isinstance(value, int) and 0 <= value < len(self.label_names) and self._labels_are_names():
            return value
        raise UserError(f"Label {preview(value)} in the {split_name} data is not one of the labels "
                        f"{preview(self.label_names)}. Fix the data or set data.label_names.")

    def _labels_are_names(self) -> bool:
        return not all(name.lstrip("-").isdigit() for name in self.label_names)

    # ---- model and inputs ----------------------------------------------------------------------------------

    def load_model(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        from transformers import AutoModelForSequenceClassification

        from finetune.models.loading import load_config, load_pretrained, load_tokenizer

        model_section = self.recipe.model
        num_labels = 1 if self.is_regression else len(self.label_names)
        config = load_config(model_section, num_labels=num_labels,
                             problem_type="regression" if self.is_regression else "single_label_classification")
        if not self.is_regression:
            config.id2label = dict(enumerate(self.label_names))
            config.label2id = dict(self.label2id)
        tokenizer = load_tokenizer(model_section, config, self.recipe.data.max_length)
        # ignore_mismatched_sizes: a checkpoint fine-tuned on other labels gets a fresh head of the right size.
        model = load_pretrained(AutoModelForSequenceClassification, model_section, config=config,
                                ignore_mismatched_sizes=True, new_head=f"classification head initialised: {num_labels} "
                                f"{'output (regression)' if self.is_regression else 'labels'}")
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer

    def tokenize(self, split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
        max_length = self.recipe.data.max_length
        # GLUE test splits carry label -1 on every row.
        has_labels = (self.label_column in split.column_names
                      and not set(distinct_values(split, self.label_column)) <= {-1, None})

        def encode(batch: dict[str, list]) -> dict[str, list]:
            texts = [[str(text) for text in batch[column]] for column in self.text_columns]
            encoded = tokenizer(*texts, truncation=True, max_length=max_length)
            if has_labels:
                encoded["labels"] = [self.label_id(value) for value in batch[self.label_column]]
            return encoded

        from finetune.data.caching import map_cached

        # A re-run with the same data, tokenizer and settings reads the tokenized split from the cache.
        return map_cached(split, encode, tokenizer=tokenizer, columns=[*self.text_columns, self.label_column],
                          settings={"max_length": max_length, "text_columns": self.text_columns,
                                    "label_column": self.label_column, "has_labels": has_labels,
                                    "label_names": self.label_names, "is_regression": self.is_regression})

    def before_training(self, trainer: Trainer, run_dir: Path) -> None:
        """Evaluate longest inputs first: each batch pads to its longest input, so batches of similar length compute
        less (SST-2 dev: half the positions). The metrics do not depend on the order."""
        from finetune.data.sampling import longest_first

        trainer.eval_dataset = longest_first(trainer.eval_dataset)

    def trainer_class(self) -> type[Trainer]:
        from finetune.tasks.class_weights import weighted_trainer

        return weighted_trainer(self.loss_weights(), multi_label=self.multi_label)

    def after_training(self, trainer: Trainer, run_dir: Path) -> dict[str, Any]:
        return {"class_weights": self.loss_weights()} if self.recipe.train.class_weights is not None else {}

    def label_counts(self) -> list[int]:
        """Training examples per label id (train.class_weights, the imbalance check)."""
        counts = [0] * len(self.label_names)
        for value, count in value_counts(self.data.train, self.label_column).items():  # distinct labels, counted
            counts[int(self.label_id(value))] += count
        return counts

    def loss_weights(self) -> list[float] | None:
        from finetune.tasks.class_weights import resolve_class_weights

        setting, train = self.recipe.train.class_weights, getattr(self.data, "train", None)
        if setting is None or train is None:
            return None  # `finetune evaluate` scores without training data: the plain loss
        return resolve_class_weights(setting, self.label_counts(), len(train), self.multi_label, self.label_names)

    def data_collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=None)

    # ---- metrics and predictions ---------------------------------------------------------------------------

    @property
    def metric_names(self) -> tuple[str, ...]:
        if self.data.glue_task is not None:
            return self.data.glue_task.metrics
        if self.is_regression:
            return ("pearson", "spearmanr", "mse")
        return ("accuracy", "f1")

    @property
    def main_metric(self) -> str:
        return self.metric_names[0]

    def _predicted(self, logits: Any) -> Any:
        import numpy as np

        logits = logits[0] if isinstance(logits, tuple) else logits
        return logits.reshape(-1) if self.is_regression else np.argmax(logits, axis=-1)

    def score(self, predictions: Any, references: Any) -> dict[str, float]:
        results: dict[str, float] = {}
        for name in self.metric_names:
            kwargs = {"average": "macro"} if name in ("f1", "precision", "recall") and len(self.label_names) > 2 else {}
            results.update(metric_registry.load(name).compute(predictions=list(predictions),
                                                              references=list(references), **kwargs))
        return results

    def resampling_scorer(self, records: list[dict[str, Any]]) -> Callable[[Sequence[int]], dict[str, float]] | None:
        to_id = float if self.is_regression else self.label2id.__getitem__
        return metric_registry.labelled_resampler(self.score, records, to_id)

    def compute_metrics(self, eval_prediction: Any) -> dict[str, float]:
        return self.score(self._predicted(eval_prediction.predictions), eval_prediction.label_ids)

    def write_predictions(self, trainer: Trainer, raw: datasets.Dataset, tokenized: datasets.Dataset,
                          path: Path, metric_key_prefix: str = "eval") -> dict[str, float]:
        import numpy as np

        from finetune.data.sampling import length_order

        # Longest first, so batches pad little; the rows go back to file order below.
        order = np.asarray(length_order(tokenized), dtype=np.int64)
        output = trainer.predict(tokenized.select(order), metric_key_prefix=metric_key_prefix)
        sorted_logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        logits = np.empty_like(sorted_logits)
        logits[order] = sorted_logits
        predicted = self._predicted(logits)
        if not self.is_regression:
            shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
            confidence = (shifted / shifted.sum(axis=-1, keepdims=True)).max(axis=-1)
        if not trainer.is_world_process_zero():  # every process predicts (collectively); one writes
            return dict(output.metrics or {}) if output.label_ids is not None else {}
        references = _column(tokenized, "labels") if "labels" in tokenized.column_names else None
        names = self.written_label_names()  # the ids of predictions and labels: the model's
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for row_index, row in enumerate(raw.select_columns(self.text_columns)):
                record: dict[str, Any] = dict(row)
                if references is not None:
                    reference = references[row_index]
                    record["label"] = reference if self.is_regression else names[reference]
                if self.is_regression:
                    record["prediction"] = float(predicted[row_index])
                else:
                    record["prediction"] = names[int(predicted[row_index])]
                    record["score"] = round(float(confidence[row_index]), 6)
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return dict(output.metrics or {}) if output.label_ids is not None else {}

    def check_report(self, data: LoadedData) -> list[tuple[str, str]]:
        lines = [("text columns", ", ".join(self.text_columns))]
        if not self.is_regression and data.train is not None:
            from finetune.tasks.class_weights import balance_lines

            lines += balance_lines(self.label_names, self.label_counts(), self.recipe.train.class_weights)
            if getattr(self, "untrained_labels", None):
                lines.append(("labels not in train", f"{preview(self.untrained_labels)}: in the evaluation data "
                                                     f"only, so the model can never predict them"))
        return lines

    # ---- scoring a saved checkpoint ------------------------------------------------------------------------

    def prepare_for_checkpoint(self, data: LoadedData, checkpoint_config: Any) -> None:
        from finetune.tasks.label_matching import adopt_label_names  # data without label names takes the checkpoint's

        adopt_label_names(self.recipe.data, data, checkpoint_config, _LABEL_COLUMN_GUESSES)

    def adopt_model(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, checkpoint: str) -> Any:
        import numpy as np

        from finetune.tasks.label_matching import label_permutation, permuted_metrics

        super().adopt_model(model, tokenizer, checkpoint)
        self.permutation = label_permutation(self.is_regression, list(self.label_names), model.config, checkpoint)
        if self.permutation is None:
            return self.compute_metrics
        # Predictions come in the checkpoint's ids; scores are computed in the data's.
        compute = permuted_metrics(self.score, np.argsort(np.asarray(self.permutation)))
        return compute

    def relabel(self, tokenized: datasets.Dataset) -> datasets.Dataset:
        permutation = getattr(self, "permutation", None)
        if permutation is None or "labels" not in tokenized.column_names:
            return tokenized
        relabelled = tokenized.map(lambda batch: {"labels": [permutation[i] for i in batch["labels"]]}, batched=True)
        return relabelled

    def written_label_names(self) -> list[str]:
        """Label names by id as predictions are written: the checkpoint's order once its labels were matched."""
        permutation = getattr(self, "permutation", None)
        if permutation is None:
            return list(self.label_names)
        names = [""] * len(self.label_names)
        for data_id, checkpoint_id in enumerate(permutation):
            names[checkpoint_id] = self.label_names[data_id]
        return names

    def evaluation_settings(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        return {**super().evaluation_settings(tokenizer),
                "label_names": None if self.is_regression else list(self.label_names),
                "label_mapping": ("by name (checkpoint order differs)" if getattr(self, "permutation", None)
                                  else "identity")}

    # ---- finetune predict ----------------------------------------------------------------------------------

    @classmethod
    def predict(cls, run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                request: PredictRequest) -> list[dict[str, Any]]:
        """A label and its probability per input (regression: the predicted value)."""
        from finetune.tasks.classification_predict import predict_labels

        return predict_labels(run_dir, recipe, family, request)

    @staticmethod
    def format_prediction(record: dict[str, Any]) -> str:
        from finetune.tasks.classification_predict import prediction_line

        return prediction_line(record)


def _column(split: datasets.Dataset, column: str) -> list[Any]:
    """One column as a list, read in one go (iterating a datasets Column reads row by row: seconds on SST-2)."""
    return split.select_columns([column])[:][column]


def _label_text(value: Any) -> str:
    """Label values as names: 1 -> '1', 1.0 -> '1', 'positive' -> 'positive'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


FAMILIES = (TaskFamily(
    name="classification",
    command="classify",
    summary="Fine-tune a sequence classifier (GLUE, or any labelled text) and evaluate it. [model: bert-base-uncased]",
    task_class=ClassificationTask,
    default_model="bert-base-uncased",
    auto_model="AutoModelForSequenceClassification",
    peft_task_type="SEQ_CLS",
    pipeline_tag="text-classification",
    flags=(Flag("data.dataset", help="glue/<task>, a Hub dataset id (id or id:config), or a local file or folder."),
           Flag("data.data_dir", help="Folder of GLUE data on disk (original TSVs or HF parquet), used with --dataset "
                                      "glue/<task>."),
           Flag("data.text_columns", name="--text-column", help="Text column; give it twice for sentence pairs. "
                                                                "Default: guessed."),
           Flag("data.label_column", help="Label column. Default: label."),
           Flag("data.max_length", help="Truncate inputs to this many tokens."), Flag("data.multi_label"),
           Flag("data.label_separator"), Flag("data.label_names"), Flag("data.column_names"),
           Flag("train.class_weights", help="auto (inverse frequency) or one weight per label, e.g. 1,5."),
           Flag("train.threshold"), Flag("train.tune_threshold", help="Multi-label: pick the threshold with the best "
                                         "validation macro F1 (one per label: train.tune_threshold=per_label).")),
    architectures=("ForSequenceClassification",),
    benchmark_datasets=("glue/", "nyu-mll/glue"),
    checkpoint_hint="a *ForSequenceClassification model, e.g. a `finetune classify` run",
    new_head=True, tiny_model=build_tiny_bert, smoke=smoke_data.classification,
),)
