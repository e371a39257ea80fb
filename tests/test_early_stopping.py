"""train.early_stopping_patience: training stops once the best-model metric stops improving, and the run says so
(metrics.json, the printed summary); every task family watches its own best-model metric."""

from __future__ import annotations

import json

import pytest

from finetune.config.schema import Recipe
from finetune.tasks import families, get_task
from finetune.training.arguments import build_training_arguments
from finetune.training.early_stopping import early_stopping_callback, early_stopping_report
from tests.helpers import write_csv


def test_classifier_stops_early_and_says_when_and_why(cli, tmp_path, tiny_bert, sentiment_rows):
    train, validation = sentiment_rows
    # A learning rate too small to change any prediction: accuracy never improves after the first evaluation.
    result = cli(["classify", "--model", tiny_bert, "--train-file", write_csv(tmp_path / "train.csv", train[:64]),
                  "--validation-file", write_csv(tmp_path / "validation.csv", validation[:32]),
                  "--output-dir", tmp_path / "run", "--max-steps", "20", "--batch-size", "8", "--learning-rate",
                  "1e-12", "--early-stopping-patience", "2", "train.eval_strategy=steps", "train.eval_steps=2"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    stopping = metrics["early_stopping"]
    # Evaluations at steps 2 (the best), 4 and 6 (no improvement twice): stopped at step 6 of 20.
    assert stopping["stopped_early"] is True and stopping["step"] == 6 and metrics["global_step"] == 6
    assert stopping["planned_steps"] == 20 and stopping["best_step"] == 2 and stopping["metric"] == "eval_accuracy"
    assert stopping["reason"].startswith("eval_accuracy did not improve on its best")
    assert "stopped early" in result.output and "at step 6 of 20" in result.output


def test_early_stopping_needs_evaluation_data(cli, tmp_path, tiny_bert, sentiment_rows):
    train, _ = sentiment_rows
    result = cli(["classify", "--model", tiny_bert, "--train-file", write_csv(tmp_path / "train.csv", train[:16]),
                  "--output-dir", tmp_path / "run", "--early-stopping-patience", "1", "--max-steps", "1"])
    assert result.exit_code == 2
    assert "early_stopping_patience needs evaluations to watch, but there is no evaluation data" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("family", families(), ids=lambda family: family.name)
def test_every_family_stops_on_its_own_best_model_metric(family, tmp_path):
    from transformers import TrainerControl, TrainerState

    from finetune.data.sources import load_data

    assert family.smoke is not None and family.tiny_model is not None
    case = family.smoke(tmp_path)  # the family's own small dataset and tiny model, written to tmp_path
    settings = case.settings
    model = family.tiny_model(tmp_path / "model", case.texts)
    recipe = Recipe.model_validate({**settings, "task": family.name, "model": {"name": str(model)},
                                    "train": {**settings["train"], "early_stopping_patience": 2}})
    task = get_task(recipe)
    task.setup(load_data(recipe.data))  # the main metric can depend on the data (GLUE tasks, regression)
    args = build_training_arguments(recipe, task, tmp_path, ["validation"], 100)
    callback = early_stopping_callback(recipe.train, evaluates=True)
    metric = f"eval_{task.main_metric}"
    assert args.metric_for_best_model == task.main_metric
    # A metric that gets worse after the first evaluation, in the metric's own direction.
    better, worse = (1.0, 0.5) if args.greater_is_better else (0.5, 1.0)
    state, control = TrainerState(max_steps=100), TrainerControl()
    for step, value in ((10, better), (20, worse), (30, worse)):
        state.global_step = step
        state.log_history.append({metric: value, "step": step})
        callback.on_evaluate(args, state, control, metrics={metric: value})
        if state.best_metric is None or (value > state.best_metric) == args.greater_is_better:
            state.best_metric = value  # what the Trainer does after on_evaluate
        assert control.should_training_stop == (step == 30)
    report = early_stopping_report(callback, state, args)
    assert report is not None and report["stopped_early"] and report["step"] == 30 and report["best_step"] == 10
