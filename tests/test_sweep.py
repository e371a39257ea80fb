"""`finetune sweep`: a study that resumes, workers sharing one SQLite study, pruning, reports and the best recipe,
on a tiny BERT for a few steps per trial."""

from __future__ import annotations

import csv
import json
import sys
from types import SimpleNamespace

import pytest
import yaml

from finetune.errors import UserError
from finetune.sweep.space import Param, parse_cli_params, parse_param, search_space
from tests.helpers import write_csv

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread

optuna = pytest.importorskip("optuna")


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory, tiny_bert, sentiment_rows):
    """A recipe whose trials take a few seconds: 64 examples, 2 epochs of 4 steps, two learning rates."""
    train, validation = sentiment_rows
    folder = tmp_path_factory.mktemp("sweep-data")
    recipe = {"task": "classification", "model": {"name": str(tiny_bert)},
              "data": {"train_file": str(write_csv(folder / "train.csv", train[:64])),
                       "validation_file": str(write_csv(folder / "validation.csv", validation[:32])),
                       "max_length": 32},
              "train": {"epochs": 2, "batch_size": 16, "save_total_limit": 1},
              "sweep": {"params": {"train.learning_rate": "choice(1e-3,3e-3)", "train.batch_size": 16,
                                   "train.epochs": 2, "train.weight_decay": 0.0}}}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def study_trials(sweep_dir):
    study = optuna.load_study(study_name="finetune-sweep", storage=f"sqlite:///{sweep_dir / 'study.db'}")
    return study.get_trials(deepcopy=False)


def test_a_sweep_resumes_up_to_more_trials_and_writes_a_best_recipe_that_trains(cli, recipe_file, tmp_path):
    sweep_dir = tmp_path / "sweep"
    first = cli(["sweep", recipe_file, "--trials", 2, "--output-dir", sweep_dir])
    assert first.exit_code == 0, first.output
    assert len(study_trials(sweep_dir)) == 2

    again = cli(["sweep", recipe_file, "--trials", 3, "--output-dir", sweep_dir])  # the same command, one more
    assert again.exit_code == 0, again.output
    trials = study_trials(sweep_dir)
    assert [trial.number for trial in trials] == [0, 1, 2]
    assert all(trial.state.name == "COMPLETE" for trial in trials)
    # Each trial is a normal run directory with the trial's values in its recipe.
    for trial in trials:
        run_dir = sweep_dir / f"trial-{trial.number:03d}"
        assert json.loads((run_dir / "metrics.json").read_text())["eval_accuracy"] == pytest.approx(trial.value)
        ran = yaml.safe_load((run_dir / "recipe.yaml").read_text())
        assert ran["train"]["learning_rate"] == trial.params["train.learning_rate"]
        assert ran["train"]["warmup_ratio"] == pytest.approx(trial.params["train.warmup_ratio"])

    # Leaderboard: the terminal, Markdown and CSV agree; best first.
    with (sweep_dir / "leaderboard.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["rank"] for row in rows] == ["1", "2", "3"]
    scores = [float(row["eval_accuracy"]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    best = max(trials, key=lambda trial: trial.value)
    assert float(rows[0]["eval_accuracy"]) == pytest.approx(best.value)
    assert "| rank |" in again.output and "eval_accuracy" in (sweep_dir / "leaderboard.md").read_text()
    assert (sweep_dir / "plots" / "metric_by_trial.png").stat().st_size > 0

    # The best recipe is the best trial's, ready for `finetune train`: it passes `finetune check`.
    best_recipe = sweep_dir / "best_recipe.yaml"
    written = yaml.safe_load(best_recipe.read_text())
    assert written["train"]["learning_rate"] == best.params["train.learning_rate"]
    assert written["output_dir"] == str((sweep_dir / "best").resolve())
    assert f"best recipe: {best_recipe}" in again.output
    checked = cli(["check", best_recipe])
    assert checked.exit_code == 0, checked.output
    assert "ok: the run is ready to start." in checked.output

    # Enough trials already: nothing more runs.
    done = cli(["sweep", recipe_file, "--trials", 3, "--output-dir", sweep_dir])
    assert done.exit_code == 0 and len(study_trials(sweep_dir)) == 3


def test_two_workers_share_one_sqlite_study(cli, recipe_file, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    sweep_dir = tmp_path / "sweep"
    result = cli(["sweep", recipe_file, "--trials", 2, "--workers", 2, "--output-dir", sweep_dir,
                  "--param", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    trials = study_trials(sweep_dir)
    assert sorted(trial.number for trial in trials) == [0, 1]
    assert all(trial.state.name == "COMPLETE" for trial in trials)
    # Two processes, one study: each wrote its own trial's run directory, both in the leaderboard.
    assert {path.name for path in sweep_dir.glob("trial-*")} == {"trial-000", "trial-001"}
    assert len((sweep_dir / "leaderboard.csv").read_text().splitlines()) == 3


def test_an_evaluation_below_the_median_of_earlier_trials_prunes_the_trial():
    from transformers import TrainerControl

    from finetune.sweep.study import pruning_callback

    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    args = SimpleNamespace(eval_strategy="epoch")

    def evaluate(accuracy: float) -> bool:
        trial = study.ask()
        callback = pruning_callback(trial, "eval_accuracy")
        control = TrainerControl()
        callback.on_evaluate(args, SimpleNamespace(epoch=1.0, global_step=4), control,
                             metrics={"eval_accuracy": accuracy})
        study.tell(trial, accuracy)
        return control.should_training_stop

    assert not evaluate(0.9) and not evaluate(0.8)  # the first two trials are never pruned
    assert not evaluate(0.95)  # above the median
    assert evaluate(0.5)  # below it: training stops after this evaluation


def test_search_space_specs():
    assert parse_param("train.learning_rate", "loguniform(1e-5,1e-3)") == Param(
        "train.learning_rate", "loguniform", (1e-5, 1e-3))
    assert parse_param("train.epochs", "int(1, 4)") == Param("train.epochs", "int", (1, 4))
    assert parse_param("train.lr_scheduler", "choice(linear,cosine)").values == ("linear", "cosine")
    assert parse_param("train.epochs", "2") == Param("train.epochs", "fixed", (2,))
    # The default space, the recipe's sweep.params, then --param, key by key.
    space = {param.key: param for param in search_space(
        {"train.epochs": 1}, parse_cli_params(["train.learning_rate=uniform(1e-4,2e-4)"]))}
    assert space["train.epochs"].kind == "fixed" and space["train.learning_rate"].kind == "uniform"
    assert space["train.batch_size"].kind == "choice"  # untouched default
    assert search_space({}, {}, seq2seq=True)[0].values == (5e-5, 1e-3)


@pytest.mark.parametrize(("spec", "message"), [
    ("train.learning_rate=loguniform(0,1e-3)", "loguniform() needs LOW above 0"),
    ("train.learning_rate=uniform(1e-3,1e-5)", "LOW above HIGH; swap them"),
    ("train.epochs=int(1.5,3)", "int() takes whole numbers"),
    ("train.epochs=gaussian(1,2)", "cannot read 'gaussian(1,2)'; use loguniform(LOW,HIGH)"),
    ("train.learning_rate", "give KEY=SPEC"),
])
def test_a_bad_spec_is_refused_with_the_form_to_use(spec, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_cli_params([spec])


def test_a_key_that_is_not_in_the_recipe_fails_before_any_trial(cli, recipe_file, tmp_path):
    result = cli(["sweep", recipe_file, "--trials", 1, "--output-dir", tmp_path / "sweep",
                  "--param", "train.learnin_rate=loguniform(1e-5,1e-3)"])
    assert result.exit_code == 2
    assert "train.learnin_rate" in result.output and "learning_rate" in result.output
    assert not list((tmp_path / "sweep").glob("trial-*"))


def test_without_optuna_the_message_names_the_extra(cli, recipe_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    result = cli(["sweep", recipe_file, "--trials", 1, "--output-dir", tmp_path / "sweep"])
    assert result.exit_code == 2
    assert "pip install 'finetune[sweep]'" in result.output


def test_ctrl_c_stops_the_running_trial_and_the_same_command_continues(recipe_file, tmp_path):
    import os
    import signal
    import subprocess

    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "-m", "finetune", "sweep", str(recipe_file), "--trials", "1", "--output-dir",
               str(sweep_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([*command, "--param", "train.epochs=200"], stderr=subprocess.PIPE, text=True, env=env)
    for line in process.stderr:  # wait until the trial runs, then Ctrl-C
        if "trial 0 starts" in line:
            process.send_signal(signal.SIGINT)
            break
    rest = process.stderr.read()
    assert process.wait(timeout=300) == 130, rest
    assert "run the same command again to continue" in rest
    assert [trial.state.name for trial in study_trials(sweep_dir)] == ["FAIL"]  # stopped, not counted
    assert "fail" in (sweep_dir / "leaderboard.csv").read_text()

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert [trial.state.name for trial in study_trials(sweep_dir)] == ["FAIL", "COMPLETE"]
