"""A task family added from outside the package: one Task subclass, one TaskFamily, one `register` call, and it
runs through `finetune check`, `train`, its own generated training command, `predict` and `evaluate` with no edit
anywhere else. If this test needs a change in finetune/ to pass, the registry has leaked.

The family here scores text with a number (mean absolute error): regression from one text column to a `target`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune.tasks.base import Flag, PredictRequest, Task, TaskFamily
from tests.helpers import invoke, write_csv


class TextScoreTask(Task):
    def setup(self, data: Any) -> None:
        self.data = data
        self.text_column = (self.recipe.data.text_columns or ["text"])[0]
        for split in [data.train, *data.eval.values()]:
            missing = {self.text_column, "target"} - set(split.column_names)
            if missing:
                from finetune.errors import UserError

                raise UserError(f"text_score needs the columns {sorted(missing)}; columns: {split.column_names}")

    def load_model(self) -> Any:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        name = self.recipe.model.name
        config = AutoConfig.from_pretrained(name, num_labels=1, problem_type="regression")
        model = AutoModelForSequenceClassification.from_pretrained(name, config=config, ignore_mismatched_sizes=True)
        return model, AutoTokenizer.from_pretrained(name)

    def tokenize(self, split: Any, tokenizer: Any) -> Any:
        def encode(batch: dict[str, list]) -> dict[str, list]:
            encoded = tokenizer(batch[self.text_column], truncation=True, max_length=self.recipe.data.max_length)
            if "target" in batch:
                encoded["labels"] = [float(value) for value in batch["target"]]
            return encoded

        return split.map(encode, batched=True, remove_columns=split.column_names)

    def data_collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    @property
    def main_metric(self) -> str:
        return "mae"

    def compute_metrics(self, eval_prediction: Any) -> dict[str, float]:
        import numpy as np

        predictions = np.asarray(eval_prediction.predictions).reshape(-1)
        return {"mae": float(np.abs(predictions - np.asarray(eval_prediction.label_ids)).mean())}

    def write_predictions(self, trainer: Any, raw: Any, tokenized: Any, path: Path,
                          metric_key_prefix: str = "eval") -> dict[str, float]:
        output = trainer.predict(tokenized, metric_key_prefix=metric_key_prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for text, value in zip(raw[self.text_column], output.predictions.reshape(-1)):
                handle.write(json.dumps({"text": text, "prediction": float(value)}) + "\n")
        return dict(output.metrics)

    @classmethod
    def predict(cls, run_dir: Path, recipe: Any, family: TaskFamily, request: PredictRequest) -> list[dict[str, Any]]:
        import torch
        from transformers import AutoTokenizer

        model, tokenizer = family.load_trained_model(run_dir), AutoTokenizer.from_pretrained(run_dir)
        texts = [text for text, _ in request.inputs]
        with torch.inference_mode():
            scores = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.reshape(-1).tolist()
        return [{"text": text, "score": score} for text, score in zip(texts, scores)]

    @staticmethod
    def format_prediction(record: dict[str, Any]) -> str:
        return f"{record['score']:.3f}\t{record['text']}"


FAMILY = TaskFamily(
    name="text_score", command="score-text", summary="Fine-tune a model to score text with a number (MAE).",
    task_class=TextScoreTask, default_model="bert-base-uncased", auto_model="AutoModelForSequenceClassification",
    peft_task_type="SEQ_CLS", pipeline_tag="text-classification", flags=(Flag("data.max_length"),),
    checkpoint_hint="a text_score run",
)


@pytest.fixture(scope="module")
def registered():
    """The family registered for this module only (the registry and the CLI app are restored afterwards)."""
    import finetune.tasks
    from finetune.cli.app import app
    from finetune.cli.training import add_training_command

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(finetune.tasks, "_FAMILIES", dict(finetune.tasks._FAMILIES))
        patch.setattr(app, "registered_commands", list(app.registered_commands))
        finetune.tasks.register(FAMILY)
        add_training_command(FAMILY)
        yield FAMILY


@pytest.fixture(scope="module")
def scored_rows(tmp_path_factory, sentiment_rows) -> tuple[Path, Path]:
    """Sentences scored by how positive they are: 1 for positive, -1 for negative (a learnable number)."""
    folder = tmp_path_factory.mktemp("text-score")
    train, evaluation = sentiment_rows
    rows = [[{"text": row["text"], "target": 1.0 if row["label"] == "positive" else -1.0} for row in split]
            for split in (train, evaluation[:60])]
    return write_csv(folder / "train.csv", rows[0]), write_csv(folder / "validation.csv", rows[1])


def test_a_registered_family_runs_through_check_train_predict_and_evaluate(registered, scored_rows, tiny_bert,
                                                                          tmp_path):
    train_file, validation_file = scored_rows
    recipe = tmp_path / "score.yaml"
    recipe.write_text(f"task: text_score\nmodel:\n  name: {tiny_bert}\ndata:\n  train_file: {train_file}\n"
                      f"  validation_file: {validation_file}\n  max_length: 32\n"
                      f"train:\n  epochs: 6\n  learning_rate: 3.0e-3\n  batch_size: 16\n"
                      f"output_dir: {tmp_path / 'run'}\n")

    checked = invoke(["check", recipe])
    assert checked.exit_code == 0, checked.output
    assert "text_score" in checked.output and "steps" in checked.output

    trained = invoke(["train", recipe])
    assert trained.exit_code == 0, trained.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["task"] == "text_score" and metrics["eval_mae"] < 0.6  # chance (predicting 0): 1.0
    card = (tmp_path / "run" / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card

    predicted = invoke(["predict", tmp_path / "run", "--text", "a gorgeous witty film", "--text", "dull awful"])
    assert predicted.exit_code == 0, predicted.output
    scores = [float(line.split("\t")[0]) for line in predicted.output.strip().splitlines()]
    assert scores[0] > 0 > scores[1]

    evaluated = invoke(["evaluate", tmp_path / "run", "--output-dir", tmp_path / "results"])
    assert evaluated.exit_code == 0, evaluated.output
    results = json.loads(next((tmp_path / "results").rglob("results_*.json")).read_text())
    (entry,) = results["results"].values()
    assert entry["mae,none"] == pytest.approx(metrics["eval_mae"], abs=1e-4)


def test_the_generated_command_takes_the_schema_flags(registered, scored_rows, tiny_bert, tmp_path):
    train_file, validation_file = scored_rows
    result = invoke(["score-text", "--model", tiny_bert, "--train-file", train_file, "--validation-file",
                     validation_file, "--max-length", 16, "--max-steps", 2, "--output-dir", tmp_path / "run"])
    assert result.exit_code == 0, result.output
    recipe = (tmp_path / "run" / "recipe.yaml").read_text()
    assert "task: text_score" in recipe and "max_length: 16" in recipe

    helped = invoke(["score-text", "--help"])
    assert "--max-length" in helped.output and "--learning-rate" in helped.output
