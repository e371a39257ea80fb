"""Token classification (named entity recognition): a tag per word, scored entity by entity with seqeval.

Data: CoNLL files (finetune/data/conll.py), or JSON/jsonl/parquet/Hub datasets with a column of word lists
(`tokens`) and one of tag lists (`ner_tags`: names, or ids named by a ClassLabel or `data.label_names`). Words are
split into sub-tokens by a fast tokenizer; a word's tag goes to its first sub-token and the others are ignored (-100),
as transformers' examples/pytorch/token-classification/run_ner.py does (`data.label_all_tokens` labels them all).

`train.class_weights` weights the cross-entropy by tag exactly as for single-label classification
(tasks/class_weights.py: sum_i w[y_i] * -log p_i[y_i] / sum_i w[y_i] over the scored sub-tokens, -100 skipped), with
`auto` = N / (K * n_t) counted over the tags of the training words. `check` shows the weights but does not warn
about rare tags as it does about rare classes: `O` is most of every NER corpus, so the warning would always fire.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.models.tiny import build_tiny_bert
from finetune.tasks import token_labels
from finetune.tasks.base import Flag, PredictRequest, Task, TaskFamily
from finetune.tasks.token_labels import IGNORED, TAG_COLUMN_GUESSES, TOKEN_COLUMN_GUESSES

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer

    from finetune.config.schema import Recipe
    from finetune.data.sources import LoadedData

class TokenClassificationTask(Task):
    def setup(self, data: LoadedData) -> None:
        self.data = data
        splits = ([("train", data.train)] if data.train is not None else []) + list(data.eval.items())
        if not splits:
            raise UserError(f"No labelled data in {data.source}: give a training or validation split.")
        columns = list(splits[0][1].column_names)
        if self.recipe.data.text_columns and len(self.recipe.data.text_columns) > 1:
            raise UserError(f"Token classification reads one column of words; got {self.recipe.data.text_columns}. "
                            f"Give --tokens-column once.")
        given_tokens = self.recipe.data.text_columns[0] if self.recipe.data.text_columns else None
        self.tokens_column = token_labels.guess_column(columns, given_tokens, TOKEN_COLUMN_GUESSES,
                                                       "words (a list per sentence)", "--tokens-column")
        self.tags_column = token_labels.guess_column(columns, self.recipe.data.label_column, TAG_COLUMN_GUESSES,
                                                     "tags (a list per sentence)", "--tags-column")
        self.label_names = token_labels.tag_names(splits, self.tokens_column, self.tags_column,
                                                  self.recipe.data.label_names)
        self.label2id = {name: index for index, name in enumerate(self.label_names)}
        # The data's tag names by the data's ids; `label_names` become the checkpoint's when one is scored.
        self.data_label_names, self.data_label2id = list(self.label_names), dict(self.label2id)
        for name, split in splits:
            token_labels.guess_column(split.column_names, self.tokens_column, (), "words", "--tokens-column")
            token_labels.guess_column(split.column_names, self.tags_column, (), "tags", "--tags-column")
            token_labels.check_rows(split, name, self.tokens_column, self.tags_column, self.label2id)
        for name, split in (data.test or {}).items():
            tags = self.tags_column if self.tags_column in split.column_names else None
            token_labels.check_rows(split, name, self.tokens_column, tags, self.label2id)

    # ---- model and inputs ----------------------------------------------------------------------------------

    def load_model(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        from transformers import AutoModelForTokenClassification

        from finetune.models.loading import load_config, load_pretrained, load_tokenizer

        model_section = self.recipe.model
        config = load_config(model_section, num_labels=len(self.label_names))
        config.id2label = dict(enumerate(self.label_names))
        config.label2id = dict(self.label2id)
        tokenizer = load_tokenizer(model_section, config, self.recipe.data.max_length, **self.tokenizer_options(config))
        model = load_pretrained(AutoModelForTokenClassification, model_section, config=config,
                                ignore_mismatched_sizes=True,
                                new_head=f"token classification head initialised: {len(self.label_names)} tags")
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer

    def tokenize(self, split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
        if not tokenizer.is_fast:
            raise UserError(f"Token classification needs a fast tokenizer (it maps sub-tokens to words); "
                            f"{type(tokenizer).__name__} is not one. Use a model that ships tokenizer.json.")
        max_length = self.recipe.data.max_length
        label_all = self.recipe.data.label_all_tokens
        has_labels = self.tags_column in split.column_names
        continuation = token_labels.continuation_ids(self.label_names)
        tag_index = self.tag_index

        def encode(batch: dict[str, list]) -> dict[str, list]:
            encoded = tokenizer(batch[self.tokens_column], is_split_into_words=True, truncation=True,
                                max_length=max_length)
            if has_labels:
                encoded["labels"] = [
                    token_labels.align_labels(encoded.word_ids(index),
                                              [tag_index(tag) for tag in tags],
                                              label_all, continuation)
                    for index, tags in enumerate(batch[self.tags_column])]
            return encoded

        from finetune.data.caching import map_cached

        columns = [self.tokens_column, *([self.tags_column] if has_labels else [])]
        # The data's tag names too: its tag ids are mapped to the model's through them (a checkpoint scored).
        return map_cached(split, encode, tokenizer=tokenizer, columns=columns, code=[token_labels],
                          settings={"max_length": max_length, "label_all_tokens": label_all, "columns": columns,
                                    "label_names": self.label_names, "data_label_names": self.data_label_names,
                                    "task": "token_classification"})

    @staticmethod
    def tokenizer_options(config: Any) -> dict[str, Any]:
        return token_labels.tokenizer_options(config)

    def tag_index(self, tag: Any) -> int:
        """The model's id of a tag from the data (a name, or an id in the data's own tag order)."""
        data_id = token_labels.tag_id(tag, self.data_label2id, "the data")
        return self.label2id[self.data_label_names[data_id]]

    def data_collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORED)

    # ---- class weights -----------------------------------------------------------------------------------------

    def tag_counts(self) -> list[int]:
        """Training words per tag id (the model's ids)."""
        counts = [0] * len(self.label_names)
        train = self.data.train
        assert train is not None  # loss_weights asks only with training data
        for tags in train.select_columns([self.tags_column])[:][self.tags_column]:
            for tag in tags:
                counts[self.tag_index(tag)] += 1
        return counts

    def loss_weights(self) -> list[float] | None:
        from finetune.tasks.class_weights import resolve_class_weights

        setting, train = self.recipe.train.class_weights, getattr(self.data, "train", None)
        if setting is None or train is None:
            return None
        return resolve_class_weights(setting, self.tag_counts(), len(train), False, self.label_names)

    def trainer_class(self) -> type[Trainer]:
        """Cross-entropy over the scored sub-tokens (-100 is its ignore_index), weighted by train.class_weights,
        computed by the Trainer as a batch mean: with the model's own loss, BERT-style heads (a batch mean the
        Trainer took for a token sum) reported --gradient-accumulation-steps N times the loss and clipped N times
        larger gradients."""
        from finetune.tasks.class_weights import weighted_trainer

        return weighted_trainer(self.loss_weights(), multi_label=False, own_loss=True)

    def after_training(self, trainer: Trainer, run_dir: Path) -> dict[str, Any]:
        return {"class_weights": self.loss_weights()} if self.recipe.train.class_weights is not None else {}

    def before_training(self, trainer: Trainer, run_dir: Path) -> None:
        """Evaluate longest sentences first: batches of similar length pad less; the scores do not change."""
        from finetune.data.sampling import longest_first

        trainer.eval_dataset = longest_first(trainer.eval_dataset)

    # ---- metrics and predictions ---------------------------------------------------------------------------

    @property
    def main_metric(self) -> str:
        return "f1"

    def compute_metrics(self, eval_prediction: Any) -> dict[str, float]:
        import numpy as np

        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        predicted, gold = token_labels.tag_sequences(np.argmax(logits, axis=-1), eval_prediction.label_ids,
                                                     self.written_label_names())
        return token_labels.entity_scores(predicted, gold)

    def written_label_names(self) -> list[str]:
        """Tag names by the model's ids (a checkpoint scored by `finetune evaluate` brings its own)."""
        return getattr(self, "model_label_names", None) or list(self.label_names)

    def write_predictions(self, trainer: Trainer, raw: datasets.Dataset, tokenized: datasets.Dataset,
                          path: Path, metric_key_prefix: str = "eval") -> dict[str, float]:
        """One line per sentence: its tokens, the gold tags (when labelled) and the predicted tag of each word (its
        first sub-token's; words cut off by max_length are predicted O)."""
        import numpy as np

        from finetune.data.sampling import length_order

        order = np.asarray(length_order(tokenized), dtype=np.int64)
        output = trainer.predict(tokenized.select(order), metric_key_prefix=metric_key_prefix)
        metrics = dict(output.metrics or {}) if output.label_ids is not None else {}
        if not trainer.is_world_process_zero():
            return metrics
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        predicted_ids = np.argmax(logits, axis=-1)
        probabilities = _softmax_max(logits)
        row_of = {int(row): position for position, row in enumerate(order)}
        names = self.written_label_names()
        tokenizer: Any = trainer.processing_class
        columns = [self.tokens_column, *([self.tags_column] if self.tags_column in raw.column_names else [])]
        rows = raw.select_columns(columns)[:]  # plain lists, read in one go
        words = rows[self.tokens_column]
        gold = rows.get(self.tags_column)
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=self.recipe.data.max_length)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for row, sentence in enumerate(words):
                positions = token_labels.first_subtoken_positions(encoded.word_ids(row))
                position_row = row_of[row]
                tags: list[str] = []
                scores: list[float | None] = []
                for word in range(len(sentence)):
                    if word in positions:
                        tags.append(names[int(predicted_ids[position_row, positions[word]])])
                        scores.append(round(float(probabilities[position_row, positions[word]]), 4))
                    else:
                        tags.append("O")
                        scores.append(None)
                record: dict[str, Any] = {"tokens": sentence}
                if gold is not None:
                    record["tags"] = [names[self.tag_index(tag)] for tag in gold[row]]
                record.update(predicted=tags, scores=scores)
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return metrics

    def check_report(self, data: LoadedData) -> list[tuple[str, str]]:
        lines = [("columns", f"tokens: {self.tokens_column}, tags: {self.tags_column}"),
                 ("tags", f"{len(self.label_names)}: {', '.join(self.label_names)}")]
        if data.train is not None:
            entities: Counter[str] = Counter()
            for tags in data.train[self.tags_column]:
                for name in token_labels.prefixed([self.label_names[self.tag_index(tag)] for tag in tags]):
                    if name.startswith(("B-", "S-")):  # an entity begins (IO tags: where a run begins)
                        entities[name[2:]] += 1
            total = sum(entities.values())
            lines.append(("entities (train)", ", ".join(f"{name} {count}" for name, count in entities.most_common())
                          + f" ({total} in all)" if total else "none (only O tags)"))
            if self.recipe.data.label_all_tokens:
                lines.append(("sub-tokens", "every sub-token of a word is labelled and scored (label_all_tokens)"))
            if (weights := self.loss_weights()) is not None:
                lines.append(("class weights", ", ".join(f"{name} {weight:.3g}"
                                                         for name, weight in zip(self.label_names, weights))))
        return lines

    # ---- scoring a saved checkpoint ------------------------------------------------------------------------

    def adopt_model(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, checkpoint: str) -> Any:
        """Score with the checkpoint's tag names: its ids are what it predicts; the data's tags map to them."""
        super().adopt_model(model, tokenizer, checkpoint)
        config: Any = model.config
        names = [config.id2label[index] for index in range(config.num_labels)]
        unknown = [name for name in self.data_label_names if name not in names]
        if unknown:
            raise UserError(f"The data has tags {unknown[:5]} that {checkpoint} was not trained on (its tags: "
                            f"{', '.join(names)}). Score it on data with its tags.")
        self.model_label_names = names
        self.label_names = names
        self.label2id = {name: index for index, name in enumerate(names)}
        return self.compute_metrics

    def evaluation_settings(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        return {**super().evaluation_settings(tokenizer), "label_names": list(self.label_names),
                "label_all_tokens": self.recipe.data.label_all_tokens}

    # ---- finetune predict ----------------------------------------------------------------------------------

    @classmethod
    def predict(cls, run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                request: PredictRequest) -> list[dict[str, Any]]:
        from finetune.tasks.token_predict import predict_entities

        return predict_entities(run_dir, recipe, family, request)

    @staticmethod
    def format_prediction(record: dict[str, Any]) -> str:
        """The input after '> ', then one line per entity: span<TAB>type<TAB>score."""
        lines = [f"> {record['text']}"]
        lines += [f"{entity['text']}\t{entity['type']}\t{entity['score']:.4f}" for entity in record["entities"]]
        return "\n".join(lines if record["entities"] else [*lines, "(no entities)"])


def _softmax_max(logits: Any) -> Any:
    import numpy as np

    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).max(axis=-1)


def _smoke(folder: Path) -> Any:
    from finetune.tasks.token_predict import smoke_case

    return smoke_case(folder)


FAMILIES = (TaskFamily(
    name="token_classification",
    command="ner",
    summary="Fine-tune a token classifier (named entities: CoNLL files, or token/tag lists) scored with seqeval. "
            "[model: bert-base-uncased]",
    task_class=TokenClassificationTask,
    default_model="bert-base-uncased",
    auto_model="AutoModelForTokenClassification",
    peft_task_type="TOKEN_CLS",
    pipeline_tag="token-classification",
    flags=(Flag("data.text_columns", name="--tokens-column", help="Column with each sentence's words (a list). "
                                                                   "Default: tokens or words."),
           Flag("data.label_column", name="--tags-column", help="Column with each sentence's tags (a list of names "
                                                                "or ids). Default: ner_tags, tags or labels."),
           Flag("data.label_names", help="Tag names in id order, once per tag (for data that stores tag ids). "
                                         "Default: from the data."),
           Flag("data.label_all_tokens"),
           Flag("train.class_weights", help="auto (inverse tag frequency) or one weight per tag in tag order."),
           Flag("data.max_length", help="Truncate sentences to this many sub-tokens.")),
    architectures=("ForTokenClassification",),
    benchmark_datasets=("wnut_17", "leondz/wnut_17", "conll2003", "eriktks/conll2003"),
    checkpoint_hint="a *ForTokenClassification model, e.g. a `finetune ner` run",
    new_head=True, tiny_model=build_tiny_bert, smoke=_smoke,
),)
