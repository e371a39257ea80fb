"""What a task family is: its declaration (`TaskFamily`: names, model class, flags, Hub metadata) and the interface
(`Task`) that training, evaluation and `finetune predict` drive the same way for every family.

A family module (classification.py, seq2seq.py, causal_lm.py) defines a Task subclass and one `TaskFamily` per
task name it serves, listed in its `FAMILIES`; finetune/tasks/__init__.py registers them. Nothing outside
finetune/tasks/ branches on a task name: it asks the family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainingArguments

    from finetune.config.schema import Recipe
    from finetune.data.sources import LoadedData


@dataclass(frozen=True)
class Flag:
    """A task-specific command-line flag for a recipe key; name, type, help and default come from the schema unless
    given here (a flag named differently from its key, say `--max-source-length` for `data.max_length`)."""

    key: str
    name: str | None = None
    help: str | None = None


@dataclass(frozen=True)
class PredictRequest:
    """What `finetune predict` was asked: inputs (text, optional second text) and decoding overrides."""

    inputs: list[tuple[str, str | None]]
    generation: dict[str, Any] = field(default_factory=dict)  # max_new_tokens, num_beams, do_sample, temperature, ...
    batch_size: int = 32
    stream: bool = False  # print each output as soon as it is ready (a terminal)
    # Chat runs: whole conversations ({role, content} turns ending with a user turn) and a system turn for them.
    conversations: list[list[dict[str, str]]] = field(default_factory=list)
    system: str | None = None


@dataclass(frozen=True)
class SmokeCase:
    """A small task a tiny random model of the family learns in seconds, written to disk: `finetune smoke` trains on
    it, and `finetune tiny-model` trains its tokenizer on `texts` when the user gives no data."""

    settings: dict[str, Any]  # recipe layers (data files, schedule); smoke adds the model and output_dir
    texts: list[str]  # what the tiny model's tokenizer is trained on
    inputs: list[tuple[str, str | None]]  # what `predict` is asked once the run is reloaded
    metric: str  # the metrics.json key shown on the smoke line
    # None when the run learned what it should, else why not (from metrics.json and the predict records)
    check: Callable[[dict[str, Any], list[dict[str, Any]]], str | None]


@dataclass(frozen=True)
class TaskFamily:
    """One task as the rest of the toolkit sees it. Everything that differs by task is here or in `task_class`."""

    name: str  # the recipe's `task:` value
    command: str  # the training command: finetune classify
    summary: str  # the command's help
    task_class: type[Task]
    default_model: str  # the model the command starts from: the one its transformers example script uses
    auto_model: str  # transformers Auto class of the model
    peft_task_type: str  # PEFT's TaskType: which head LoRA wraps and how an adapter is rebuilt
    pipeline_tag: str  # the Hub's pipeline tag, for the model card
    flags: tuple[Flag, ...] = ()  # the command's own flags, after the shared ones
    architectures: tuple[str, ...] = ()  # endings of model class names that are checkpoints of this family
    group: str = ""  # families whose checkpoints are interchangeable (summarization and translation: seq2seq)
    benchmark_datasets: tuple[str, ...] = ()  # dataset name prefixes scored with this family (glue/)
    checkpoint_hint: str = ""  # what a checkpoint of this family looks like, for error messages
    new_head: bool = False  # the pretrained model gets a freshly initialised head sized for the data
    # Offline path for every family: a small random model of this family (saved with a tokenizer trained on the
    # given texts; finetune tiny-model), and a tiny dataset it learns quickly (finetune smoke).
    tiny_model: Callable[..., Path] | None = None  # (folder, texts, seed=0, vocab_size=...) -> folder
    smoke: Callable[[Path], SmokeCase] | None = None

    @property
    def kind(self) -> str:
        return self.group or self.name

    def load_trained_model(self, path: Path) -> Any:
        """A trained model of this family from a run, checkpoint or model folder (full weights or LoRA adapter)."""
        from finetune.models.lora import load_run_model

        return load_run_model(path, self.auto_model, **({"ignore_mismatched_sizes": True} if self.new_head else {}))


class Task(ABC):
    """One run's task: learns from the data what it needs (columns, labels), then tokenizes, collates, scores and
    writes predictions for the Trainer."""

    def __init__(self, recipe: Recipe, family: TaskFamily) -> None:
        self.recipe = recipe
        self.family = family

    # ---- training ---------------------------------------------------------------------------------------------

    @abstractmethod
    def setup(self, data: LoadedData) -> None:
        """Learn what the data implies (columns, labels) and check it, before the model is loaded."""

    @abstractmethod
    def load_model(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """The pretrained model (with a head sized for the data) and its tokenizer."""

    @abstractmethod
    def tokenize(self, split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
        """Model inputs for one split, unpadded (padding happens per batch in the collator). Cached on disk."""

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

    @staticmethod
    def tokenizer_options(config: Any) -> dict[str, Any]:
        """Keyword arguments for loading this task's tokenizer for a model with `config`: training, `check`,
        `evaluate` and `predict` all load it with these, so they tokenize alike."""
        return {}

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

    def check_report(self, data: LoadedData) -> list[tuple[str, str]]:
        """Extra lines for `finetune check`: what this task learned from the data (columns, label balance)."""
        return []

    def check_tokens(self, lengths: list[int], sampled_rows: int, train_rows: int) -> tuple[list[tuple[str, str]], int]:
        """`finetune check` lines on the tokenized sample (`lengths` of its examples), and how many training
        examples the run will have (for the step count)."""
        if not lengths:
            return [], train_rows
        max_length = self.recipe.data.max_length
        at_limit = sum(length >= max_length for length in lengths)
        return [("tokens per example", f"mean {sum(lengths) / len(lengths):.1f}, max {max(lengths)} "
                                       f"(sample of {len(lengths)})"),
                ("truncated", f"{at_limit} of {len(lengths)} sampled examples reach max_length {max_length}")
                ], train_rows

    # ---- scoring a saved checkpoint (finetune evaluate) -------------------------------------------------------

    def prepare_for_checkpoint(self, data: LoadedData, checkpoint_config: Any) -> None:
        """Hook, before `setup`: adapt to a trained checkpoint (classification takes its label names)."""

    def adopt_model(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, checkpoint: str) -> Any:
        """Take a model loaded as it was saved (what `load_model` would have set up); returns the compute_metrics
        to score it with (classification maps the checkpoint's label ids to the data's)."""
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.model, self.tokenizer = model, tokenizer
        return self.compute_metrics

    def relabel(self, tokenized: datasets.Dataset) -> datasets.Dataset:
        """Tokenized evaluation data in the adopted checkpoint's label ids (identity unless labels were matched)."""
        return tokenized

    def extra_scores(self, model: PreTrainedModel, tokenized: datasets.Dataset, batch_size: int) -> dict[str, float]:
        """Scores `write_predictions` does not give, computed so they do not depend on the batch size (the loss of
        generative tasks over all scored tokens)."""
        return {}

    def resampling_scorer(self, records: list[dict[str, Any]]) -> Callable[[Sequence[int]], dict[str, float]] | None:
        """For bootstrap standard errors: a function scoring any resample (row indices, repeats allowed) of one
        split's prediction records as `write_predictions` scored the whole split. None: no standard errors."""
        return None

    def evaluation_settings(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        """How this task scored, for the results file."""
        return {"padding_side": tokenizer.padding_side, "max_length": self.recipe.data.max_length}

    # ---- finetune predict -------------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def predict(cls, run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                request: PredictRequest) -> list[dict[str, Any]]:
        """One record per input from a trained run (or a checkpoint or model folder): label and score, or text."""

    @staticmethod
    def format_prediction(record: dict[str, Any]) -> str | None:
        """The line printed for one record without --json (None: already streamed to the terminal)."""
        return str(record.get("output", ""))
