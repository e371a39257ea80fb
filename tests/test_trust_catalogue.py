"""The bad-input catalogue (issue 13): every case ends with its exit code, one `error:` line that names the
problem, no traceback, and nothing on disk changed: the workspace (data, a finished run, the case's own files)
and the model folder hash the same before and after."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import invoke, write_csv
from tests.trust import QUICK, fingerprint, finished_run, one_line_error


@dataclass
class Case:
    id: str
    setup: Callable[[Path, Path, Path], list]  # (workspace, case folder, model) -> command line
    expect: str  # a piece of the error line
    code: int = 2


def classify(ws: Path, case: Path, model: Path, *extra: object, train: object = None) -> list:
    return ["classify", "--model", model, "--train-file", train or ws / "train.csv", "--output-dir", case / "out",
            *QUICK, *extra]


def recipe(text: str, name: str = "recipe.yaml") -> Callable[[Path, Path, Path], list]:
    """`recipes validate` on a recipe file with `text` (a hostile or broken one)."""

    def setup(ws: Path, case: Path, model: Path) -> list:
        (case / name).write_text(text, encoding="utf-8")
        return ["recipes", "validate", case / name]

    return setup


def train_recipe(text: str) -> Callable[[Path, Path, Path], list]:
    """`train` on a full recipe (model and data filled in) plus `text`."""

    def setup(ws: Path, case: Path, model: Path) -> list:
        (case / "r.yaml").write_text(f"task: classification\nmodel:\n  name: {model}\ndata:\n  train_file: "
                                     f"{ws / 'train.csv'}\noutput_dir: {case / 'out'}\n{text}", encoding="utf-8")
        return ["train", case / "r.yaml"]

    return setup


def labels(values: list[str], column: str = "label") -> Callable[[Path, Path, Path], list]:
    def setup(ws: Path, case: Path, model: Path) -> list:
        rows = [{"text": f"film number {index}", column: value} for index, value in enumerate(values * 4)]
        return classify(ws, case, model, train=write_csv(case / "t.csv", rows))

    return setup


def broken_model(damage: Callable[[Path], None]) -> Callable[[Path, Path, Path], list]:
    """A copy of the tiny model, damaged, used for training."""

    def setup(ws: Path, case: Path, model: Path) -> list:
        copy = case / "model"
        shutil.copytree(model, copy)
        damage(copy)
        return classify(ws, case, copy)

    return setup


def _truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _corrupt(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])


def _pickle_only(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")


def _no_tokenizer(folder: Path) -> None:
    for path in folder.iterdir():
        if "token" in path.name or path.name.startswith("vocab") or path.name == "special_tokens_map.json":
            path.unlink()


def _run_copy(ws: Path, case: Path) -> Path:
    copy = case / "run"
    shutil.copytree(ws / "run", copy, symlinks=True)
    return copy


def unfinished(command: str) -> Callable[[Path, Path, Path], list]:
    def setup(ws: Path, case: Path, model: Path) -> list:
        run = _run_copy(ws, case)
        (run / "metrics.json").unlink()
        return [command, run, *(["--text", "good"] if command == "predict" else [])]

    return setup


def partial_checkpoint(ws: Path, case: Path, model: Path) -> list:
    """Weights and config without tokenizer files, in a run whose own tokenizer files are gone too."""
    run = _run_copy(ws, case)
    (run / "metrics.json").unlink()
    _no_tokenizer(run)
    checkpoint = run / "checkpoint-1"
    checkpoint.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(run / name, checkpoint / name)
    return ["predict", checkpoint, "--text", "good"]


def run_with(prepare: Callable[[Path], list]) -> Callable[[Path, Path, Path], list]:
    """A command against a copy of the finished run, prepared by `prepare(run)` (which returns extra args)."""

    def setup(ws: Path, case: Path, model: Path) -> list:
        run = _run_copy(ws, case)
        return classify(ws, case, model, "--output-dir", run, *prepare(run))

    return setup


def _foreign(run: Path) -> list:
    (run / "my-notes.txt").write_text("mine\n")
    return ["--overwrite"]


def _symlink(ws: Path, case: Path, model: Path) -> list:
    run = _run_copy(ws, case)
    (case / "link").symlink_to(run)
    return classify(ws, case, model, "--output-dir", case / "link", "--overwrite")


def _unmarked(ws: Path, case: Path, model: Path) -> list:
    run = _run_copy(ws, case)
    (run / ".finetune-run").unlink()
    return classify(ws, case, model, "--output-dir", run, "--overwrite")


def _below_a_file(ws: Path, case: Path, model: Path) -> list:
    (case / "afile").write_text("x")
    return classify(ws, case, model, "--output-dir", case / "afile" / "run")


def _output_is_file(ws: Path, case: Path, model: Path) -> list:
    (case / "afile").write_text("x")
    return classify(ws, case, model, "--output-dir", case / "afile")


def _holds_the_data(ws: Path, case: Path, model: Path) -> list:
    run = _run_copy(ws, case)
    train = run / "plots" / "train.csv"
    train.parent.mkdir(exist_ok=True)
    shutil.copy(ws / "train.csv", train)
    return classify(ws, case, model, "--output-dir", run, "--overwrite", train=train)


def _holds_the_model(ws: Path, case: Path, model: Path) -> list:
    run = _run_copy(ws, case)
    return ["classify", "--model", run, "--train-file", ws / "train.csv", "--output-dir", run, "--overwrite", *QUICK]


def _non_utf8_csv(ws: Path, case: Path, model: Path) -> list:
    (case / "t.csv").write_bytes(b"text,label\ncaf\xe9 good,positive\nbad,negative\n")
    return classify(ws, case, model, train=case / "t.csv")


def _check_foreign_output(ws: Path, case: Path, model: Path) -> list:
    (case / "out").mkdir()
    (case / "out" / "x.txt").write_text("x")
    return ["check", train_recipe("")(ws, case, model)[1], "--overwrite"]


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))


def _extends_chain(ws: Path, case: Path, model: Path) -> list:
    for index in range(30):
        (case / f"r{index}.yaml").write_text(f"extends: r{index + 1}.yaml\n")
    (case / "r30.yaml").write_text("task: classification\n")
    return ["recipes", "validate", case / "r0.yaml"]


def _extends_cycle(ws: Path, case: Path, model: Path) -> list:
    (case / "a.yaml").write_text("extends: b.yaml\n")
    (case / "b.yaml").write_text("extends: a.yaml\n")
    return ["recipes", "validate", case / "a.yaml"]


def _big_recipe(ws: Path, case: Path, model: Path) -> list:
    (case / "big.yaml").write_text("description: " + "x" * 1_100_000 + "\n")
    return ["recipes", "validate", case / "big.yaml"]


def _non_utf8_recipe(ws: Path, case: Path, model: Path) -> list:
    (case / "r.yaml").write_bytes(b"description: caf\xe9\n")
    return ["recipes", "validate", case / "r.yaml"]


CASES = [
    # ---- hostile and broken recipes ----
    Case("alias-bomb", recipe(ALIAS_BOMB), "expands to more than"),
    Case("duplicate-top-key", recipe("task: classification\ntrain:\n  epochs: 1\ntrain:\n  seed: 3\n"),
         "duplicate key 'train' (first on line 2)"),
    Case("duplicate-nested-key", recipe("train:\n  epochs: 1\n  epochs: 2\n"), "duplicate key 'epochs'"),
    Case("deep-nesting", recipe("description: " + "[" * 60 + "]" * 60 + "\n"), "nests"),
    Case("recursion-nesting", recipe("description: " + "[" * 20000 + "]" * 20000 + "\n"), "nests"),
    Case("too-large", _big_recipe, "too large for a recipe"),
    Case("long-value-quoted-short", recipe("train:\n  epochs: " + "9" * 5 + "x" * 100_000 + "\n"), "train.epochs"),
    Case("extends-cycle", _extends_cycle, "forms a cycle"),
    Case("extends-too-long", _extends_chain, "chain longer than"),
    Case("extends-not-a-string", recipe("extends: [a, b]\n"), "takes one recipe name"),
    Case("epochs-inf", recipe("train:\n  epochs: .inf\n"), "train.epochs"),
    Case("epochs-nan", recipe("train:\n  epochs: .nan\n"), "train.epochs"),
    Case("learning-rate-inf", recipe("train:\n  learning_rate: .inf\n"), "train.learning_rate"),
    Case("seed-negative-yaml", recipe("train:\n  seed: -1\n"), "train.seed"),
    Case("seed-too-large", recipe("train:\n  seed: 99999999999999\n"), "train.seed"),
    Case("not-a-mapping", recipe("- a\n- b\n"), "mapping of keys"),
    Case("invalid-syntax", recipe("train: [1, 2\n"), "invalid YAML"),
    Case("not-utf8-recipe", _non_utf8_recipe, "not UTF-8"),
    Case("unknown-key", recipe("train:\n  epoch: 3\n"), "Did you mean 'epochs'"),
    Case("section-is-scalar", recipe("train: 3\n"), "is a section"),
    Case("unknown-task", recipe("task: clasification\n"), "clasification"),
    Case("seed-flag-negative", lambda ws, case, model: classify(ws, case, model, "--seed", "-1"), "train.seed"),
    Case("epochs-override-inf", lambda ws, case, model: classify(ws, case, model, "train.epochs=.inf"),
         "train.epochs"),
    Case("train-recipe-duplicate", train_recipe("train:\n  seed: 1\ntrain:\n  seed: 2\n"), "duplicate key"),
    # ---- data and labels ----
    Case("label-case-variants", labels(["positive", "Positive", "positive ", "negative", " negative", "NEGATIVE"]),
         "differ only by case or spaces"),
    Case("one-label", labels(["positive"]), "needs at least two"),
    Case("one-class-in-training", lambda ws, case, model: classify(
        ws, case, model, "--validation-file", ws / "train.csv",
        train=write_csv(case / "t.csv", [{"text": f"film {i}", "label": "positive"} for i in range(8)])),
        "one class only"),
    Case("empty-label", labels(["positive", ""]), "missing"),
    Case("missing-train-file", lambda ws, case, model: classify(ws, case, model, train=case / "nope.csv"),
         "not found"),
    Case("unsupported-extension", lambda ws, case, model: classify(
        ws, case, model, train=(case / "t.xlsx").write_text("x") and case / "t.xlsx"), "unsupported file type"),
    Case("non-utf8-data", _non_utf8_csv, "not UTF-8"),
    Case("unknown-text-column", lambda ws, case, model: classify(ws, case, model, "--text-column", "review"),
         "'review'"),
    Case("unknown-label-column", lambda ws, case, model: classify(ws, case, model, "--label-column", "labl"),
         "'labl'"),
    Case("label-outside-names", lambda ws, case, model: classify(ws, case, model, "data.label_names=[good,bad]"),
         "not one of the labels"),
    # ---- models ----
    Case("model-without-tokenizer", broken_model(_no_tokenizer), "no tokenizer files"),
    Case("model-without-weights", broken_model(lambda folder: (folder / "model.safetensors").unlink()),
         "no model weights"),
    Case("truncated-safetensors", broken_model(_truncate), "truncated"),
    Case("corrupt-safetensors", broken_model(_corrupt), "corrupt header"),
    Case("pickle-only-weights", broken_model(_pickle_only), "pickle"),
    Case("empty-model-folder", lambda ws, case, model: (case / "m").mkdir() or classify(ws, case, case / "m"),
         "not a model folder"),
    Case("max-length-too-long", lambda ws, case, model: classify(ws, case, model, "--max-length", "4096"), "512"),
    # ---- the output directory ----
    Case("output-below-a-file", _below_a_file, "is a file"),
    Case("output-is-a-file", _output_is_file, "is a file"),
    Case("existing-run-without-overwrite", run_with(lambda run: []), "--overwrite"),
    Case("foreign-file-in-run", run_with(_foreign), "my-notes.txt"),
    Case("unmarked-folder", _unmarked, "not created by finetune"),
    Case("symlink-with-overwrite", _symlink, "symbolic link"),
    Case("output-holds-the-data", _holds_the_data, "contains the training data"),
    Case("output-holds-the-model", _holds_the_model, "contains the model"),
    Case("resume-a-finished-run", lambda ws, case, model: ["train", _run_copy(ws, case) / "recipe.yaml", "--resume"],
         "nothing to resume"),
    Case("resume-missing-checkpoint", run_with(lambda run: [(run / "metrics.json").unlink() or
                                                            "train.resume=checkpoint-99"]), "checkpoint-99"),
    # ---- check and --dry-run refuse what the run would ----
    Case("dry-run-model-without-tokenizer", lambda ws, case, model: broken_model(_no_tokenizer)(ws, case, model)
         + ["--dry-run"], "no tokenizer files"),
    Case("check-epochs-inf", lambda ws, case, model: ["check", train_recipe("train:\n  epochs: .inf\n")(
        ws, case, model)[1]], "train.epochs"),
    Case("check-foreign-output", _check_foreign_output, "not created by finetune"),
    # ---- predict / evaluate on what is not a finished model ----
    Case("predict-unfinished-run", unfinished("predict"), "unfinished run"),
    Case("evaluate-unfinished-run", unfinished("evaluate"), "unfinished run"),
    Case("predict-partial-checkpoint", partial_checkpoint, "no tokenizer files"),
    Case("predict-not-a-model", lambda ws, case, model: ["predict", case, "--text", "x"], "holds no trained model"),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_bert, sentiment_rows) -> Path:
    ws = tmp_path_factory.mktemp("catalogue")
    finished_run(ws, tiny_bert, sentiment_rows[0][:40])
    return ws


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 45 and len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, workspace, tiny_bert, tmp_path):
    folder = workspace / "cases" / case.id
    folder.mkdir(parents=True)
    args = case.setup(workspace, folder, tiny_bert)
    before, model_before = fingerprint(workspace), fingerprint(tiny_bert)
    message = one_line_error(invoke(args), case.code)
    assert case.expect in message, message
    assert len(message) < 600
    assert fingerprint(workspace) == before
    assert fingerprint(tiny_bert) == model_before


def test_none_and_na_strings_are_labels(tmp_path, tiny_bert):
    """Only an empty cell is a missing label: a class called None, NA or null is a class."""
    from finetune.config.schema import Recipe
    from finetune.data.sources import load_data
    from finetune.tasks import get_task

    rows = [{"text": f"film {index}", "label": value} for index, value in enumerate(["None", "NA", "null"] * 4)]
    train = write_csv(tmp_path / "t.csv", rows)
    recipe = Recipe.model_validate({"model": {"name": str(tiny_bert)}, "data": {"train_file": str(train)}})
    task = get_task(recipe)
    task.setup(load_data(recipe.data))
    assert sorted(task.label_names) == ["NA", "None", "null"]


def test_check_reports_a_class_missing_from_training(tmp_path, tiny_bert):
    train = write_csv(tmp_path / "t.csv", [{"text": f"film {i}", "label": v} for i, v in enumerate(["a", "b"] * 4)])
    val = write_csv(tmp_path / "v.csv", [{"text": f"film {i}", "label": v} for i, v in enumerate(["a", "b", "c"])])
    result = invoke(["classify", "--model", tiny_bert, "--train-file", train, "--validation-file", val,
                     "--output-dir", tmp_path / "out", "--dry-run", *QUICK])
    assert result.exit_code == 0, result.output
    assert "labels not in train" in result.output and "'c'" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("errno_name", "code", "words"), [("ENOSPC", 1, "disk is full"),
                                                           ("EROFS", 2, "read-only"),
                                                           ("EDQUOT", 1, "quota")])
def test_environment_faults_are_one_line(errno_name, code, words):
    """Disk full (e.g. at the final save) is the machine's fault (exit 1); a read-only folder is the user's."""
    import errno
    import os

    from finetune.cli.app import fault_message

    number = getattr(errno, errno_name)
    message, exit_code = fault_message(OSError(number, os.strerror(number), "runs/x/model.safetensors"))
    assert exit_code == code and words in message and "runs/x/model.safetensors" in message and "\n" not in message


def test_disk_check_counts_the_final_model(tmp_path):
    from finetune.errors import UserError
    from finetune.outputs.run_dir import ensure_disk_space

    free = shutil.disk_usage(tmp_path).free
    parameters = int(free / (4 * 3.5))  # a checkpoint (12 bytes a parameter) fits, checkpoint + model does not
    with pytest.raises(UserError, match="final model"):
        ensure_disk_space(tmp_path, parameters)


def test_marker_names_the_run_in_metrics(workspace):
    marker = json.loads((workspace / "run" / ".finetune-run").read_text())
    assert json.loads((workspace / "run" / "metrics.json").read_text())["run_id"] == marker["run_id"]


def test_unwritable_output_dir_is_one_line(workspace, tiny_bert, tmp_path):
    """A folder the user cannot create (here under /sys, read-only or not permitted even for root) ends in one
    line with exit 2: the fix is another --output-dir."""
    target = Path("/sys/finetune-trust-test/run")
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no kernel-managed /sys here")
    message = one_line_error(invoke(classify(workspace, tmp_path, tiny_bert, "--output-dir", target)))
    assert "/sys/finetune-trust-test" in message
