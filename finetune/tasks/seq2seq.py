"""Summarization and translation with encoder-decoder models (T5, BART, Marian, Pegasus) on the Seq2SeqTrainer.

Evaluation generates text (`predict_with_generate`) with the recipe's generation settings, which are also saved in
the model's generation_config so that `finetune predict` decodes the same way. Scores: ROUGE-1/2/L/Lsum (summaries),
corpus BLEU and chrF (both), mean generated length. The final scores in metrics.json use the raw reference strings
(every reference, when a dataset has several per example); the scores logged during training, which pick the best
checkpoint, use the tokenized first reference.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.tasks import metrics as metric_registry
from finetune.errors import UserError
from finetune.tasks.base import Task

if TYPE_CHECKING:
    import datasets
    from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase, Trainer

    from finetune.data.sources import LoadedData

logger = logging.getLogger("finetune")

# Models trained with a task prefix ("summarize: ", "translate English to German: "); others get none by default.
T5_MODEL_TYPES = frozenset({"t5", "mt5", "umt5", "longt5", "switch_transformers", "t5gemma"})

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

# Language names for T5's "translate English to German: " prefix.
LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
    "et": "Estonian", "fi": "Finnish", "fr": "French", "gu": "Gujarati", "hi": "Hindi", "it": "Italian",
    "ja": "Japanese", "kk": "Kazakh", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "nl": "Dutch",
    "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sv": "Swedish", "tr": "Turkish",
    "uk": "Ukrainian", "zh": "Chinese",
}

PREDICTIONS_FILE = "predictions.jsonl"
PREDICT_BATCH_SIZE = 16


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
        for source, target in (*known, *_COLUMN_GUESSES):
            source, target = data.source_column or source, data.target_column or target
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

        return split.map(encode, batched=True, remove_columns=split.column_names, desc="Tokenizing")

    def data_collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorForSeq2Seq

        # -100 labels are ignored by the loss, so padding never counts as a target token.
        return DataCollatorForSeq2Seq(tokenizer, model=self.model, label_pad_token_id=-100)

    def training_arguments(self, **kwargs: Any) -> Any:
        from transformers import Seq2SeqTrainingArguments

        return Seq2SeqTrainingArguments(predict_with_generate=True, **kwargs)

    def trainer_class(self) -> type[Trainer]:
        from transformers import Seq2SeqTrainer

        return Seq2SeqTrainer

    def before_training(self, trainer: Trainer, run_dir: Path) -> None:
        """Evaluate longest inputs first: generation pads each batch to its longest input, so batches of similar
        length waste less. (The order does not matter to the scores; write_predictions restores it for its files.)"""
        if isinstance(trainer.eval_dataset, dict):
            trainer.eval_dataset = {name: sort_by_length(split) for name, split in trainer.eval_dataset.items()}
        elif trainer.eval_dataset is not None:
            trainer.eval_dataset = sort_by_length(trainer.eval_dataset)

    # ---- metrics and predictions ---------------------------------------------------------------------------

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("rouge", "bleu", "chrf") if self.recipe.task == "summarization" else ("bleu", "chrf")

    @property
    def main_metric(self) -> str:
        # rougeL (not Lsum) for summaries: it does not depend on how sentences are split.
        return "rougeL" if self.recipe.task == "summarization" else "bleu"

    def score(self, predictions: list[str], references: list[str | list[str]]) -> dict[str, float]:
        return metric_registry.compute(self.metric_names, predictions, references)

    def compute_metrics(self, eval_prediction: Any) -> dict[str, float]:
        generated = _clean_ids(eval_prediction.predictions, self.tokenizer.pad_token_id)
        labels = _clean_ids(eval_prediction.label_ids, self.tokenizer.pad_token_id)
        results = self.score(self._decode(generated), self._decode(labels))
        results["gen_len"] = generated_length(generated, self.tokenizer.pad_token_id)
        return results

    def _decode(self, ids: Any) -> list[str]:
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def write_predictions(self, trainer: Trainer, raw: datasets.Dataset, tokenized: datasets.Dataset,
                          path: Path, metric_key_prefix: str = "eval") -> dict[str, float]:
        order = length_order(tokenized)
        output = trainer.predict(tokenized.select(order), metric_key_prefix=metric_key_prefix)
        generated = _clean_ids(output.predictions, self.tokenizer.pad_token_id)
        predictions = [""] * len(tokenized)  # back in file order
        for text, row_index in zip(self._decode(generated), order):
            predictions[row_index] = text
        rows = raw.to_dict()
        sources = [_text(value) for value in _values(rows, self.source_column)]
        references = self._raw_references(rows, _column_names(raw))
        _write_jsonl(path, _prediction_records(sources, references, predictions))
        if references is None:
            return {}
        # Final scores on the raw reference strings, all of them: not the truncated, tokenized first reference.
        scores = self.score(predictions, references)
        scores["gen_len"] = generated_length(generated, self.tokenizer.pad_token_id)
        return {**output.metrics, **{f"{metric_key_prefix}_{name}": value for name, value in scores.items()}}

    def _raw_references(self, rows: dict[str, list], columns: list[str]) -> list[str | list[str]] | None:
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
            from finetune.training.run import PREDICTIONS_DIR

            first = run_dir / PREDICTIONS_DIR / f"{next(iter(self.data.eval))}.jsonl"
            if first.is_file():
                shutil.copyfile(first, run_dir / PREDICTIONS_FILE)
        return {}


# ---- prefixes and generation settings (shared by training and `finetune predict`) ---------------------------------


def default_source_prefix(task: str, model_type: str, source_lang: str | None, target_lang: str | None) -> str:
    """T5's pretraining prefixes; other models (BART, Marian, Pegasus) were trained without one."""
    if model_type not in T5_MODEL_TYPES:
        return ""
    if task == "summarization":
        return "summarize: "
    if source_lang and target_lang:
        return f"translate {language_name(source_lang)} to {language_name(target_lang)}: "
    logger.warning("No --source-lang/--target-lang: T5 gets no 'translate X to Y: ' prefix. "
                   "Pass --source-prefix to set one.")
    return ""


def language_name(code: str) -> str:
    """'de' -> 'German'; mBART-style codes ('de_DE') use their language part; unknown codes stay as given."""
    return LANGUAGE_NAMES.get(re.split(r"[_-]", code)[0].lower(), code)


def configure_generation(config: GenerationConfig, settings: dict[str, Any]) -> GenerationConfig:
    """Put the recipe's generation settings into a model's generation_config (used by evaluate and predict).

    Settings the chosen decoding mode ignores are reset to their neutral values: transformers refuses to save a
    generation_config with, say, a length_penalty but one beam, and a pretrained config may bring such values.
    """
    num_beams = int(settings.get("num_beams", 1))
    sampling = bool(settings.get("do_sample", False))
    # max_length, not max_new_tokens: for an encoder-decoder both count decoder tokens (max_length includes the
    # start token), and the Seq2SeqTrainer fills in a default max_length, which next to max_new_tokens makes
    # generate() warn on every batch.
    config.max_new_tokens = None
    config.max_length = int(settings.get("max_new_tokens", 64)) + 1
    config.num_beams = num_beams
    config.do_sample = sampling
    config.no_repeat_ngram_size = int(settings.get("no_repeat_ngram_size", 0))
    config.length_penalty = float(settings.get("length_penalty", 1.0)) if num_beams > 1 else 1.0
    if num_beams == 1:
        config.early_stopping = False
    config.temperature = float(settings.get("temperature", 1.0)) if sampling else 1.0
    config.top_p = float(settings.get("top_p", 1.0)) if sampling else 1.0
    config.top_k = int(settings.get("top_k", 50)) if sampling else 50
    return config


# ---- evaluation order ----------------------------------------------------------------------------------------


def length_order(dataset: datasets.Dataset) -> list[int]:
    """Row indices, longest input first: batches of similar length pad (and generate) less."""
    lengths = [len(ids) for ids in dataset["input_ids"]]
    return sorted(range(len(lengths)), key=lambda index: -lengths[index])


def sort_by_length(dataset: datasets.Dataset) -> datasets.Dataset:
    return dataset.select(length_order(dataset))


# ---- predict ---------------------------------------------------------------------------------------------------


def predict_run(run_dir: Path, texts: list[str], settings: dict[str, Any], stream: bool = False) -> list[str]:
    """Generate for each text with a trained run (or a checkpoint-N inside one), as evaluation did.

    The run's recipe supplies the source prefix, max_length and generation settings; `settings` overrides the
    latter (max_new_tokens, num_beams, do_sample, temperature, top_p, top_k). With `stream`, each output is
    printed as soon as its batch is done.
    """
    import torch
    from transformers import AutoTokenizer

    from finetune.models.lora import load_run_model

    recipe = _run_recipe(run_dir)
    data = recipe.get("data") or {}
    prefix, max_length = data.get("source_prefix") or "", int(data.get("max_length") or 512)
    model = load_run_model(run_dir, recipe.get("task", "summarization"))  # full weights or base + LoRA adapter
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    configure_generation(model.generation_config, {**(recipe.get("generation") or {}), **settings})
    outputs: list[str] = []
    for start in range(0, len(texts), PREDICT_BATCH_SIZE):
        batch = [prefix + text for text in texts[start:start + PREDICT_BATCH_SIZE]]
        encoded = tokenizer(batch, max_length=max_length, truncation=True, padding=True, return_tensors="pt")
        with torch.inference_mode():
            generated = model.generate(**encoded)
        decoded = [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
        if stream:
            for text in decoded:
                print(text, flush=True)
        outputs += decoded
    return outputs


def _run_recipe(run_dir: Path) -> dict[str, Any]:
    """recipe.yaml of a run directory, or of the run that holds a checkpoint-N folder."""
    import yaml

    if not run_dir.is_dir():
        raise UserError(f"Run directory not found: {run_dir}.")
    for recipe_file in (run_dir / "recipe.yaml", run_dir.parent / "recipe.yaml"):
        if recipe_file.is_file():
            return yaml.safe_load(recipe_file.read_text(encoding="utf-8")) or {}
    raise UserError(f"{run_dir} has no recipe.yaml: pass a run directory written by `finetune summarize/translate`.")


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


def _clean_ids(ids: Any, pad_token_id: int) -> Any:
    """Token ids with the -100 the Trainer pads with (between batches, and in labels) turned into padding."""
    import numpy as np

    ids = ids[0] if isinstance(ids, tuple) else ids
    return np.where(ids < 0, pad_token_id, ids)


def generated_length(generated: Any, pad_token_id: int) -> float:
    """Mean tokens generated per example, end-of-sequence included; not the decoder start token, not padding."""
    import numpy as np

    if len(generated) == 0:
        return 0.0
    return float(np.count_nonzero(generated[:, 1:] != pad_token_id, axis=1).mean())


def _prediction_records(sources: list[str], references: list[str | list[str]] | None,
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


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
