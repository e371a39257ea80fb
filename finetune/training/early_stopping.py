"""Early stopping for every task: transformers' EarlyStoppingCallback on the metric that picks the best checkpoint,
and the account of it for metrics.json and the end-of-run summary (stopped or not, at which step and epoch, why).

`train.early_stopping_patience: N` stops training once N evaluations in a row have not improved the best-model
metric (`train.metric_for_best_model`, else the task's main metric) by more than `train.early_stopping_threshold`;
the best checkpoint is then loaded, as at the end of every run.
"""

from __future__ import annotations

from typing import Any

from finetune.config.schema import TrainSection
from finetune.errors import UserError


def early_stopping_callback(train: TrainSection, evaluates: bool) -> Any:
    """The callback a recipe asks for, or None; refuses early stopping without evaluation to stop on."""
    if train.early_stopping_patience is None:
        return None
    if not evaluates:
        why = ("train.eval_strategy is no" if train.eval_strategy == "no" else "there is no evaluation data")
        raise UserError(f"train.early_stopping_patience needs evaluations to watch, but {why}. Give evaluation "
                        f"data (--validation-file) and eval_strategy epoch or steps, or remove the patience.")
    from transformers import EarlyStoppingCallback

    return EarlyStoppingCallback(early_stopping_patience=train.early_stopping_patience,
                                 early_stopping_threshold=train.early_stopping_threshold)


def early_stopping_report(callback: Any, state: Any, args: Any) -> dict[str, Any] | None:
    """metrics.json's `early_stopping` entry: whether training stopped early, where, and why. None when off."""
    if callback is None:
        return None
    patience = callback.early_stopping_patience
    stopped = callback.early_stopping_patience_counter >= patience and state.global_step < state.max_steps
    metric = args.metric_for_best_model
    metric = metric if metric.startswith("eval_") else f"eval_{metric}"
    best_step = next((entry.get("step") for entry in state.log_history
                      if entry.get(metric) == state.best_metric and "step" in entry), None)
    report: dict[str, Any] = {"stopped_early": stopped, "patience": patience,
                              "threshold": callback.early_stopping_threshold, "metric": metric,
                              "best_metric": state.best_metric, "best_step": best_step}
    if stopped:
        report.update(step=state.global_step, epoch=round(float(state.epoch or 0), 4), planned_steps=state.max_steps,
                      reason=f"{metric} did not improve on its best ({state.best_metric:.4g} at step {best_step}) "
                             f"for {patience} evaluation{'s' if patience > 1 else ''}")
    return report


def summary_line(report: dict[str, Any] | None) -> tuple[str, str] | None:
    """The end-of-run summary row."""
    if not report:
        return None
    if not report["stopped_early"]:
        return "early stopping", f"not triggered (patience {report['patience']} on {report['metric']})"
    return "stopped early", (f"at step {report['step']} of {report['planned_steps']} (epoch {report['epoch']:g}): "
                             f"{report['reason']}; best checkpoint loaded")
