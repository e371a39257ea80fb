"""A sweep's Optuna study: where it is stored, how a trial trains, and the workers that run trials.

The study lives in an RDB storage, by default an SQLite file in the sweep folder (`study.db`): re-running the same
command opens it again and adds trials until it holds `trials` finished ones (complete or pruned), and several
processes (`--workers`) or machines (`--storage postgresql://...`) run trials of one study side by side. Each trial
is `finetune.training.run.run` on the base recipe plus the trial's values, in `SWEEP/trial-NNN/`: a normal run
directory. Poor trials are pruned from their per-epoch evaluations (Optuna's median rule).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from finetune.config.schema import Recipe
from finetune.errors import TrainingInterrupted, UserError
from finetune.sweep.space import Param, nested

logger = logging.getLogger("finetune")

STUDY_FILE = "study.db"
HEARTBEAT_SECONDS = 60  # a trial whose process died (killed) is marked failed after GRACE_SECONDS without a beat
GRACE_SECONDS = 180


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError as error:
        raise UserError("finetune sweep needs Optuna: pip install 'finetune[sweep]' (or pip install optuna).") \
            from error
    import warnings

    # A failed trial is reported by the sweep itself (its error, or Ctrl-C), not by Optuna's traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Heartbeats (failing the trials of killed workers) are "experimental" in Optuna 4-5: nothing a user can act on.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


@dataclass
class SweepSettings:
    """Everything a worker needs, as plain data (it travels to worker processes as JSON)."""

    recipe: dict[str, Any]  # the base recipe, validated, as model_dump(mode="json")
    params: list[dict[str, Any]]  # Param fields
    trials: int
    sweep_dir: str
    storage: str
    study_name: str
    metric: str  # the metrics.json key the study optimizes (eval_accuracy, ...)
    direction: str  # maximize or minimize
    pruning: bool = True

    def space(self) -> list[Param]:
        return [Param(item["key"], item["kind"], tuple(item["values"])) for item in self.params]


def storage_url(sweep_dir: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(sweep_dir / STUDY_FILE).resolve()}"


def open_storage(url: str) -> Any:
    optuna = require_optuna()
    # SQLite: several worker processes write one file; wait for the lock rather than fail at once.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS,
                                          grace_period=GRACE_SECONDS)
    except ImportError as error:  # a database driver (psycopg2, pymysql) that is not installed
        raise UserError(f"--storage {url.split(':', 1)[0]}: {error}. Install the database driver.") from error
    except Exception as error:
        if type(error).__module__.startswith("sqlalchemy"):
            raise UserError(f"cannot open the study storage {url}: {str(error).splitlines()[0][:200]}") from error
        raise


def open_study(settings: SweepSettings, worker: int = 0) -> Any:
    """The study (created on first use); each worker samples with its own seed so workers try different values."""
    optuna = require_optuna()
    seed = int(settings.recipe["train"]["seed"]) + worker
    study = optuna.create_study(
        study_name=settings.study_name, storage=open_storage(settings.storage), direction=settings.direction,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=(optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0) if settings.pruning
                else optuna.pruners.NopPruner()),
        load_if_exists=True)
    recorded = study.user_attrs.get("metric")
    if recorded is None:
        study.set_user_attr("metric", settings.metric)
    elif recorded != settings.metric or study.direction.name.lower() != settings.direction:
        raise UserError(f"the study '{settings.study_name}' in {settings.storage} optimizes {recorded} "
                        f"({study.direction.name.lower()}), this sweep {settings.metric} ({settings.direction}): "
                        f"choose another --output-dir or --study-name.")
    return study


def counted_states() -> tuple[Any, ...]:
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


def finished_trials(study: Any) -> int:
    return len(study.get_trials(deepcopy=False, states=counted_states()))


def trial_recipe(settings: SweepSettings, values: dict[str, Any], run_dir: Path) -> Recipe:
    """The base recipe with a trial's values, writing to `run_dir`; refused like an override would be."""
    from finetune.config.loading import build_recipe

    return build_recipe([("recipe", {key: value for key, value in settings.recipe.items() if key != "output_dir"}),
                         ("sweep parameters", nested(values)), ("sweep", {"output_dir": str(run_dir)})])


def check_space(settings: SweepSettings) -> None:
    """Every searched key is a recipe key, and its extreme values make a valid recipe: fail before any trial."""
    for param in settings.space():
        candidates = [param.values[0]] if param.kind == "fixed" else list(param.values)
        for value in candidates:
            try:
                trial_recipe(settings, {param.key: value}, Path(settings.sweep_dir) / "check")
            except UserError as error:
                raise UserError(f"search space {param.key}={param.describe()}: {error}") from None


def pruning_callback(trial: Any, metric: str) -> Any:
    """A TrainerCallback that reports each evaluation to the trial and stops training when Optuna prunes it."""
    from transformers import TrainerCallback

    class ReportToTrial(TrainerCallback):
        pruned_at: int | None = None

        def __init__(self) -> None:
            self.reported: set[int] = set()

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                        **kwargs: Any) -> None:
            if not metrics or metric not in metrics:
                return
            # Epochs as steps (1, 2, ...) so trials with other batch sizes compare at the same point.
            step = round(state.epoch) if args.eval_strategy == "epoch" else state.global_step
            if step in self.reported:  # the final evaluation of the kept checkpoint, after training
                return
            self.reported.add(step)
            trial.report(float(metrics[metric]), step)
            if trial.should_prune():
                self.pruned_at = step
                control.should_training_stop = True

    return ReportToTrial()


def stop_callback(stop: dict[str, bool]) -> Any:
    """A TrainerCallback that ends training at the next step once Ctrl-C asked the sweep to stop (outside the
    training loop, where the run's own Ctrl-C handling is not installed yet)."""
    from transformers import TrainerCallback

    class StopOnRequest(TrainerCallback):
        stopped = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if stop["requested"]:
                self.stopped = control.should_training_stop = True

    return StopOnRequest()


def run_trial(settings: SweepSettings, trial: Any, stop: dict[str, bool] | None = None) -> float:
    """Train one trial; its value is the metric of the run's kept (best) checkpoint on the evaluation set."""
    optuna = require_optuna()
    from finetune.training.run import run

    values = {param.key: param.suggest(trial) for param in settings.space()}
    run_dir = Path(settings.sweep_dir) / f"trial-{trial.number:03d}"
    recipe = trial_recipe(settings, values, run_dir)
    trial.set_user_attr("run_dir", str(run_dir))
    shown = ", ".join(f"{key.split('.')[-1]}={_short(value)}" for key, value in values.items())
    print(f"sweep: trial {trial.number} starts: {shown}", file=sys.stderr, flush=True)
    callback = pruning_callback(trial, settings.metric) if settings.pruning else None
    stopper = stop_callback(stop if stop is not None else {"requested": False})
    try:
        result = run(recipe, callbacks=[stopper, *([callback] if callback else [])])
    except TrainingInterrupted:
        print(f"sweep: trial {trial.number} interrupted (Ctrl-C): recorded as failed, not counted.",
              file=sys.stderr, flush=True)
        raise
    if stopper.stopped:
        print(f"sweep: trial {trial.number} stopped (Ctrl-C): recorded as failed, not counted.",
              file=sys.stderr, flush=True)
        raise KeyboardInterrupt
    if settings.metric not in result.metrics:
        raise UserError(f"the run wrote no {settings.metric} (metrics: {', '.join(sorted(result.metrics))[:200]}): "
                        f"set train.metric_for_best_model to one of its evaluation metrics.")
    value = float(result.metrics[settings.metric])
    if callback is not None and callback.pruned_at is not None:
        print(f"sweep: trial {trial.number} pruned after evaluation {callback.pruned_at}: "
              f"{settings.metric} {value:.4f}", file=sys.stderr, flush=True)
        raise optuna.TrialPruned()
    print(f"sweep: trial {trial.number} done: {settings.metric} {value:.4f}", file=sys.stderr, flush=True)
    return value


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def work(settings: SweepSettings, worker: int = 0) -> None:
    """One worker: trials until the study holds `settings.trials` finished or running ones."""
    require_optuna()
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from finetune.console import VERBOSITY_VARIABLE, verbosity

    study = open_study(settings, worker)
    # Running trials count too, so workers that finish together do not both start one more than asked.
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    if len(study.get_trials(deepcopy=False, states=states)) >= settings.trials:
        return
    previous = os.environ.get(VERBOSITY_VARIABLE)
    if verbosity() != "verbose":  # one line per trial, not every trial's training log (--verbose shows them)
        os.environ[VERBOSITY_VARIABLE] = "quiet"
    # Ctrl-C outside a trial's training loop (loading, evaluating, between trials) only asks to stop: no trial
    # starts after it, and the running one ends at its next step. Inside the loop the run's own handler saves a
    # checkpoint and stops. A second Ctrl-C aborts at once.
    stop = {"requested": False}
    handler = None

    def request_stop(signum: int, frame: Any) -> None:
        if stop["requested"]:
            signal.signal(signal.SIGINT, handler or signal.default_int_handler)
            raise KeyboardInterrupt
        stop["requested"] = True
        print("sweep: stopping: no new trial starts, the running one stops at its next step (Ctrl-C again to "
              "abort).", file=sys.stderr, flush=True)

    try:
        handler = signal.signal(signal.SIGINT, request_stop)
    except ValueError:  # not the main thread: leave signals alone
        handler = None
    try:
        study.optimize(lambda trial: run_trial(settings, trial, stop),
                       callbacks=[MaxTrialsCallback(settings.trials, states),
                                  lambda study, trial: study.stop() if stop["requested"] else None],
                       gc_after_trial=True)
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
        if previous is None:
            os.environ.pop(VERBOSITY_VARIABLE, None)
        else:
            os.environ[VERBOSITY_VARIABLE] = previous
    if stop["requested"]:
        raise KeyboardInterrupt


def run_workers(settings: SweepSettings, workers: int) -> None:
    """`workers` processes on the study (one: in this process). Ctrl-C reaches every worker (one process group):
    each stops its trial at the end of the step (the trial is recorded as failed and not counted) and starts no
    other; a re-run of the command continues the study."""
    if workers <= 1:
        work(settings)
        return
    environment = dict(os.environ)
    # Trials side by side share the cores: torch's default (every core per process) would oversubscribe them.
    environment.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    processes = [subprocess.Popen([sys.executable, "-m", "finetune.sweep.worker", json.dumps(asdict(settings)),
                                   str(index)], env=environment) for index in range(workers)]
    failed = []
    try:
        for index, process in enumerate(processes):
            if process.wait() != 0:
                failed.append((index, process.returncode))
    except KeyboardInterrupt:
        for process in processes:
            process.wait()  # they got the Ctrl-C too: let them record their trials' state
        raise
    if failed:
        index, code = failed[0]
        if code == 130:
            raise KeyboardInterrupt
        raise UserError(f"sweep worker {index} failed (exit {code}); its message is above.")


def worker_main(argv: list[str]) -> int:
    """`python -m finetune.sweep.worker SETTINGS_JSON INDEX`: a worker process."""
    settings = SweepSettings(**json.loads(argv[0]))
    try:
        work(settings, int(argv[1]))
    except (KeyboardInterrupt, TrainingInterrupted):
        print(f"sweep worker {argv[1]}: interrupted; its trial is recorded as failed.", file=sys.stderr)
        return 130
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0

