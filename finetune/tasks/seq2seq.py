"""Summarization and translation with encoder-decoder models (T5, BART, Marian, Pegasus) on the Seq2SeqTrainer.

Evaluation generates text (`predict_with_generate`) with the recipe's generation settings, which are also saved in
the model's generation_config so that `finetune predict` decodes the same way. Scores: ROUGE-1/2/L/Lsum (summaries),
corpus BLEU and chrF (both), mean generated length. The final scores in metrics.json use the raw reference strings
(every reference, when a dataset has several per example); the scores logged during training, which pick the best
checkpoint, use the tokenized first reference.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.models.tiny import build_tiny_t5
from finetune.tasks import metrics as metric_registry
from finetune.tasks import smoke_data
from finetune.tasks.base import Flag, PredictRequest, Task, TaskFamily
from finetune.tasks.seq2seq_generation import (
    T5_MODEL_TYPES,
    clean_ids,
    configure_generation,
    default_source_prefix,
    generated_length,
    predict_texts,
)

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer

    from finetune.config.schema import Recipe
    from finetune.data.sources import LoadedData

# (document, summary) columns of well-known summarization datasets on the Hub, matched by dataset name.
SUMMARIZATION_COLUMNS = {
    "cnn_dailymail": ("article", "highlights"),
    "xsum": ("document", "summary"),
    "samsum": ("dialogue", "summary"),
    "dialogsum": ("dialogue", "summary"),
    "billsum": ("text", "summary"),
}
# Tried in order for any other data. (context, response) is SAMSum as the local jsonl files store it.
_COLUMN_GUESSES = (*SUMMARIZATION_COLUMNS.values(), ("context", "response"), ("source", "target"),
                   ("input", "output"), ("text", "target"))



class Seq2SeqTask(Task):
    def setup(self, data: LoadedData) -> None:
        self.data = data
        splits = ([("train", data.train)] if data.train is not None else []) + list(data.eval.items())
        if not splits:
            raise UserError(f"No data with targets in {data.source}: give a training or validation split.")
        columns = _column_names(splits[0][1])
        self.source_column, self.target_column = (
            self._translation_columns(columns) if self.recipe.task == "translation"
            else self._summarization_columns(columns))
        for name, split in splits:
            self._require_columns(split, name, need_target=True)
        for name, split in data.test.items():
            self._require_columns(split, name, need_target=False)
        self._resolve_source_prefix()

    # ---- columns -------------------------------------------------------------------------------------------

    def _summarization_columns(self, columns: list[str]) -> tuple[str, str]:
        data = self.recipe.data
        dataset = (data.dataset or "").lower()
        known = [pair for name, pair in SUMMARIZATION_COLUMNS.items() if name in dataset]
        for guessed_source, guessed_target in (*known, *_COLUMN_GUESSES):
            source, target = data.source_column or guessed_source, data.target_column or guessed_target
            if source in columns and _reference_columns(columns, target):
                return source, target
        raise UserError(f"Cannot tell which columns hold the document and the summary. Columns: "
                        f"{', '.join(columns)}. Pass --source-column and --target-column.")

    def _translation_columns(self, columns: list[str]) -> tuple[str, str]:
        data = self.recipe.data
        if data.source_column and data.target_column:
            return data.source_column, data.target_column
        if not (data.source_lang and data.target_lang):
            raise UserError("Translation needs the language pair: pass --source-lang and --target-lang "
                            "(for example en and de), or --source-column and --target-column via overrides.")
        if "translation" in columns:  # Hub translation rows: {"translation": {"en": ..., "de": ...}}
            source, target = f"translation.{data.source_lang}", f"translation.{data.target_lang}"
        else:
            source, target = data.source_lang, data.target_lang
        return data.source_column or source, data.target_column or target

    def _require_columns(self, split: datasets.Dataset, split_name: str, need_target: bool) -> None:
        columns = _column_names(split)
        missing = [column for column in (self.source_column,) if column not in columns]
        if need_target and not _reference_columns(columns, self.target_column):
            missing.append(self.target_column)
        if missing:
            flag = "--source-lang/--target-lang" if self.recipe.task == "translation" else \
                "--source-column/--target-column"
            raise UserError(f"Column '{missing[0]}' is not in the {split_name} data ({self.data.source}). "
                            f"Columns there: {', '.join(columns)}. Pass {flag} to name the right ones.")

    def _resolve_source_prefix(self) -> None:
        """T5 was pretrained with task prefixes; the resolved prefix goes into recipe.yaml (and so into predict)."""
        data = self.recipe.data
        if data.source_prefix is not None:
            return
        from finetune.models.loading import load_config

        model_type = load_config(self.recipe.model).model_type
        data.source_prefix = default_source_prefix(self.recipe.task, model_type, data.source_lang, data.target_lang)

    # ---- model and inputs ----------------------------------------------------------------------------------

    def load_model(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        from transformers import AutoModelForSeq2SeqLM

        from finetune.models.loading import load_config, load_pretrained, load_tokenizer

        section = self.recipe.model
        config = load_config(section)
        # T5's relative positions have no length limit, though its config names 512 positions.
        checked_length = None if config.model_type in T5_MODEL_TYPES else self.recipe.data.max_length
        tokenizer = load_tokenizer(section, config, checked_length)
        model = load_pretrained(AutoModelForSeq2SeqLM, section, config=config)
        configure_generation(model.generation_config, self.recipe.generation.model_dump())
        # The prefix is part of the input format: kept where transformers keeps T5's, so that a bare model folder
        # (no recipe.yaml) is used the same way. Only this one: the base model's other task prefixes no longer apply.
        model.config.task_specific_params = ({self.recipe.task: {"prefix": self.recipe.data.source_prefix}}
                                             if self.recipe.data.source_prefix else None)
        self.model, self.tokenizer = model, tokenizer  # the collator builds decoder inputs with the model
        return model, tokenizer

    def tokenize(self, split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
        data = self.recipe.data
        prefix = data.source_prefix or ""
        references = _reference_columns(_column_names(split), self.target_column)

        def encode(batch: dict[str, list]) -> dict[str, list]:
            sources = [prefix + _text(value) for value in _values(batch, self.source_column)]
            encoded = tokenizer(sources, max_length=data.max_length, truncation=True)
            if references:  # several references (DialogSum test): the first one is the training target
                targets = [_text(value) for value in _values(batch, references[0])]
                encoded["labels"] = tokenizer(text_target=targets, max_length=data.max_target_length,
                                              truncation=True)["input_ids"]
            return encoded

        from finetune.data.caching import map_cached

        # A re-run with the same data, tokenizer and settings reads the tokenized split from the cache.
        read = list(dict.fromkeys(column.split(".")[0] for column in [self.source_column, *references]))
        return map_cached(split, encode, tokenizer=tokenizer, columns=read,
                          settings={"prefix": prefix, "max_length": data.max_length,
                                    "max_target_length": data.max_target_length, "source": self.source_column,
                                    "references": references})

    def data_collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorForSeq2Seq

        # -100 labels are ignored by the loss, so padding never counts as a target token.
        return DataCollatorForSeq2Seq(tokenizer, model=self.model, label_pad_token_id=-100)

    def training_arguments(self, **kwargs: Any) -> Any:
        from transformers import Seq2SeqTrainingArguments

        return Seq2SeqTrainingArguments(predict_with_generate=True, **kwargs)

    def trainer_class(self) -> type[Trainer]:
        from transformers import Seq2SeqTrainer

        from finetune.compat import generation_config_kept

        return generation_config_kept(Seq2SeqTrainer)

    def before_training(self, trainer: Trainer, run_dir: Path) -> None:
        """Evaluate longest inputs first: generation pads each batch to its longest input, so batches of similar
        length waste less. (The order does not matter to the scores; write_predictions restores it for its files.)"""
        from finetune.data.sampling import longest_first

        trainer.eval_dataset = longest_first(trainer.eval_dataset)

    # ---- metrics and predictions ---------------------------------------------------------------------------

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("rouge", "bleu", "chrf") if self.recipe.task == "summarization" else ("bleu", "chrf")

    @property
    def main_metric(self) -> str:
        # rougeL (not Lsum) for summaries: it does not depend on how sentences are split.
        return "rougeL" if self.recipe.task == "summarization" else "bleu"

    def score(self, predictions: list[str], references: Sequence[str | list[str]]) -> dict[str, float]:
        return metric_registry.compute(self.metric_names, predictions, references)

    def resampling_scorer(self, records: list[dict[str, Any]]) -> Callable[[Sequence[int]], dict[str, float]] | None:
        references = [record.get("references", record.get("reference")) for record in records]
        if not records or any(reference is None for reference in references):
            return None
        return metric_registry.resampling_scorer(self.metric_names, [r["prediction"] for r in records], references)

    def compute_metrics(self, eval_prediction: Any) -> dict[str, float]:
        generated = clean_ids(eval_prediction.predictions, self.tokenizer.pad_token_id)
        labels = clean_ids(eval_prediction.label_ids, self.tokenizer.pad_token_id)
        results = self.score(self._decode(generated), self._decode(labels))
        results["gen_len"] = generated_length(generated, self.tokenizer.pad_token_id)
        return results

    def _decode(self, ids: Any) -> list[str]:
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def write_predictions(self, trainer: Trainer, raw: datasets.Dataset, tokenized: datasets.Dataset,
                          path: Path, metric_key_prefix: str = "eval") -> dict[str, float]:
        from finetune.data.sampling import length_order
        from finetune.outputs.files import write_jsonl

        order = length_order(tokenized)
        output = trainer.predict(tokenized.select(order), metric_key_prefix=metric_key_prefix)
        generated = clean_ids(output.predictions, self.tokenizer.pad_token_id)
        predictions = [""] * len(tokenized)  # back in file order
        for text, row_index in zip(self._decode(generated), order):
            predictions[row_index] = text
        rows = raw.to_dict()
        sources = [_text(value) for value in _values(rows, self.source_column)]
        references = self._raw_references(rows, _column_names(raw))
        write_jsonl(path, _prediction_records(sources, references, predictions))
        if references is None:
            return {}
        # Final scores on the raw reference strings, all of them: not the truncated, tokenized first reference.
        scores = self.score(predictions, references)
        scores["gen_len"] = generated_length(generated, self.tokenizer.pad_token_id)
        return {**(output.metrics or {}), **{f"{metric_key_prefix}_{name}": value for name, value in scores.items()}}

    def _raw_references(self, rows: dict[str, list], columns: list[str]) -> Sequence[str | list[str]] | None:
        """One reference string per row, or a list when the data has several (summary1, summary2, ...)."""
        reference_columns = _reference_columns(columns, self.target_column)
        if not reference_columns:
            return None
        per_column = [[_text(value) for value in _values(rows, column)] for column in reference_columns]
        if len(per_column) == 1:
            return per_column[0]
        return [list(row) for row in zip(*per_column)]

    def after_training(self, trainer: Trainer, run_dir: Path) -> dict[str, Any]:
        """The first evaluation split's predictions also go to RUN_DIR/predictions.jsonl, the file users look for."""
        if self.data.eval:
            from finetune.outputs.run_dir import PREDICTIONS_DIR, PREDICTIONS_FILE

            first = run_dir / PREDICTIONS_DIR / f"{next(iter(self.data.eval))}.jsonl"
            if first.is_file():
                shutil.copyfile(first, run_dir / PREDICTIONS_FILE)
        return {}

    # ---- scoring a saved checkpoint, predict ---------------------------------------------------------------

    def adopt_model(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, checkpoint: str) -> Any:
        super().adopt_model(model, tokenizer, checkpoint)
        configure_generation(model.generation_config, self.recipe.generation.model_dump())
        return self.compute_metrics

    def extra_scores(self, model: PreTrainedModel, tokenized: datasets.Dataset, batch_size: int) -> dict[str, float]:
        if not len(tokenized) or "labels" not in tokenized.column_names:
            return {}
        from finetune.tasks.losses import token_loss

        return {"loss": token_loss(model, tokenized, self.data_collator(self.tokenizer), batch_size, shift=False)}

    def evaluation_settings(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        return {**super().evaluation_settings(tokenizer),
                "generation": self.recipe.generation.model_dump(exclude={"num_samples", "sample_prompts"}),
                "max_target_length": self.recipe.data.max_target_length,
                "source_prefix": self.recipe.data.source_prefix}

    @classmethod
    def predict(cls, run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                request: PredictRequest) -> list[dict[str, Any]]:
        return predict_texts(run_dir, recipe, family, request)

    @staticmethod
    def format_prediction(record: dict[str, Any]) -> str:
        return str(record["output"])


# ---- small helpers -------------------------------------------------------------------------------------------


def _column_names(split: datasets.Dataset) -> list[str]:
    """Column names, with Hub translation rows also offered as translation.<lang>."""
    names = list(split.column_names)
    feature = split.features.get("translation")
    if feature is not None:
        languages = getattr(feature, "languages", None) or (feature.keys() if isinstance(feature, dict) else ())
        names += [f"translation.{language}" for language in languages]
    return names


def _reference_columns(columns: list[str], target: str) -> list[str]:
    """[target], or its numbered variants (summary1, summary2, summary3 in DialogSum test) when it is absent."""
    if target in columns:
        return [target]
    numbered = re.compile(rf"{re.escape(target)}_?(\d+)$")
    found = [(int(match.group(1)), column) for column in columns if (match := numbered.match(column))]
    return [column for _, column in sorted(found)]


def _values(batch: dict[str, list], column: str) -> list[Any]:
    """A column of a batch; 'translation.de' reads the de entry of Hub translation rows."""
    if column in batch:
        return batch[column]
    outer, _, inner = column.partition(".")
    return [row[inner] for row in batch[outer]]


def _text(value: Any) -> str:
    return "" if value is None else str(value)



def _prediction_records(sources: list[str], references: Sequence[str | list[str]] | None,
                        predictions: list[str]) -> list[dict[str, Any]]:
    records = []
    for index, (source, prediction) in enumerate(zip(sources, predictions)):
        record: dict[str, Any] = {"source": source}
        if references is not None:
            reference = references[index]
            record["references" if isinstance(reference, list) else "reference"] = reference
        record["prediction"] = prediction
        records.append(record)
    return records


_SHARED: dict[str, Any] = {"task_class": Seq2SeqTask, "default_model": "t5-small",
                           "auto_model": "AutoModelForSeq2SeqLM", "peft_task_type": "SEQ_2_SEQ_LM",
                           "architectures": ("ForConditionalGeneration", "ForSeq2SeqLM"), "group": "seq2seq",
                           "tiny_model": build_tiny_t5}
_LENGTH_FLAGS = (Flag("data.source_prefix", help="Text put before every source."),
                 Flag("data.max_length", name="--max-source-length", help="Source tokens kept."),
                 Flag("data.max_target_length", help="Target tokens kept."),
                 Flag("generation.num_beams", help="Beam width for generation."),
                 Flag("generation.max_new_tokens"))

FAMILIES = (
    TaskFamily(
        name="summarization", command="summarize", pipeline_tag="summarization",
        summary="Fine-tune an encoder-decoder model (T5, BART, Pegasus) to summarize; scored with ROUGE. "
                "[model: t5-small]",
        flags=(Flag("data.source_column", help="Document/source column."),
               Flag("data.target_column", help="Summary/translation column."), *_LENGTH_FLAGS),
        checkpoint_hint="an encoder-decoder model, e.g. a `finetune summarize` run",
        smoke=smoke_data.summarization, **_SHARED),
    TaskFamily(
        name="translation", command="translate", pipeline_tag="translation",
        summary="Fine-tune an encoder-decoder model (T5, Marian, mBART) to translate; scored with BLEU and chrF.",
        flags=(Flag("data.train_file", help="jsonl/csv with the two language columns, or a prefix of line-aligned "
                                            "text files (train for train.en + train.de)."),
               Flag("data.source_lang", help="Source language code, e.g. en."),
               Flag("data.target_lang", help="Target language code, e.g. de."), *_LENGTH_FLAGS),
        checkpoint_hint="an encoder-decoder model, e.g. a `finetune translate` run",
        smoke=smoke_data.translation, **_SHARED),
)
