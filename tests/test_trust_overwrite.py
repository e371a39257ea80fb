"""--overwrite cannot destroy, failed runs leave nothing that blocks, and one process writes a run (issue 13).

Each test is one of the issue's "Why" examples: the folder's fingerprint before and after proves nothing was lost.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import invoke, write_csv
from tests.trust import QUICK, fingerprint, finished_run, one_line_error


@pytest.fixture
def rows(sentiment_rows):
    return sentiment_rows[0][:40]


@pytest.fixture
def run_dir(tmp_path, tiny_bert, rows):
    return finished_run(tmp_path / "work", tiny_bert, rows)


def test_overwrite_refuses_a_users_project_folder(tmp_path, monkeypatch, tiny_bert, rows):
    project = tmp_path / "project"
    project.mkdir()
    write_csv(project / "train.csv", rows)
    write_csv(project / "val.csv", rows[:10])
    (project / "notes.txt").write_text("my notes\n")
    (project / "mydata").mkdir()
    (project / "mydata" / "raw.txt").write_text("raw\n")
    (project / "recipe.yaml").write_text(f"task: classification\nmodel:\n  name: {tiny_bert}\noutput_dir: .\n"
                                         f"data:\n  train_file: train.csv\n  validation_file: val.csv\n")
    monkeypatch.chdir(project)
    before = fingerprint(project)
    for extra in ([], ["--overwrite"], ["--dry-run", "--overwrite"]):
        message = one_line_error(invoke(["train", "recipe.yaml", *QUICK[-2:], *extra]))
        assert "--output-dir" in message
    assert fingerprint(project) == before


def test_a_users_checkpoint_folder_is_not_a_run(tmp_path, tiny_bert, rows):
    folder = tmp_path / "mine"
    (folder / "checkpoint-from-colab").mkdir(parents=True)
    (folder / "checkpoint-from-colab" / "weights.bin").write_bytes(b"precious")
    (folder / "recipe.yaml").write_text("task: classification\n")
    before = fingerprint(folder)
    train = write_csv(tmp_path / "train.csv", rows)
    message = one_line_error(invoke(["classify", "--model", tiny_bert, "--train-file", train, "--output-dir", folder,
                                     "--overwrite", *QUICK]))
    assert "not created by finetune" in message
    assert fingerprint(folder) == before


def test_marked_run_with_a_foreign_file_is_refused(run_dir, tiny_bert):
    (run_dir / "notes.txt").write_text("mine\n")
    before = fingerprint(run_dir)
    message = one_line_error(invoke(["classify", "--model", tiny_bert, "--train-file", run_dir.parent / "train.csv",
                                     "--output-dir", run_dir, "--overwrite", *QUICK]))
    assert "notes.txt" in message
    assert fingerprint(run_dir) == before


@pytest.mark.parametrize("bad", [["--train-file", "trian.csv"], ["--label-column", "labl"],
                                 ["--model", "missing-model-folder"], ["--seed", "-1"]])
def test_old_run_survives_a_bad_overwrite(run_dir, tiny_bert, bad):
    before = fingerprint(run_dir)
    args = {"--model": str(tiny_bert), "--train-file": str(run_dir.parent / "train.csv")}
    args.update({bad[0]: str(run_dir.parent / bad[1]) if bad[0] != "--label-column" and bad[0] != "--seed"
                 else bad[1]})
    flat = [item for pair in args.items() for item in pair]
    if bad[0] in ("--label-column", "--seed"):
        flat += bad
    one_line_error(invoke(["classify", *flat, "--output-dir", run_dir, "--overwrite", *QUICK]))
    assert fingerprint(run_dir) == before


def test_overwrite_replaces_a_finished_run(run_dir, tiny_bert):
    old_id = json.loads((run_dir / ".finetune-run").read_text())["run_id"]
    assert json.loads((run_dir / "metrics.json").read_text())["run_id"] == old_id
    (run_dir / "plots" / "from-the-old-run.png").write_bytes(b"png")  # as if the old run had plotted more
    result = invoke(["classify", "--model", tiny_bert, "--train-file", run_dir.parent / "train.csv",
                     "--output-dir", run_dir, "--overwrite", *QUICK])
    assert result.exit_code == 0, result.output
    assert not (run_dir / "plots" / "from-the-old-run.png").exists()  # the old run's folders went, not just files
    new_id = json.loads((run_dir / "metrics.json").read_text())["run_id"]
    assert new_id != old_id and json.loads((run_dir / ".finetune-run").read_text())["run_id"] == new_id


def test_output_dir_holding_the_data_is_refused(tmp_path, run_dir, tiny_bert):
    (run_dir / "predictions").mkdir(exist_ok=True)
    inside = run_dir / "predictions" / "train.csv"
    inside.write_bytes((run_dir.parent / "train.csv").read_bytes())
    before = fingerprint(run_dir)
    message = one_line_error(invoke(["classify", "--model", tiny_bert, "--train-file", inside,
                                     "--output-dir", run_dir, "--overwrite", *QUICK]))
    assert "training data" in message
    assert fingerprint(run_dir) == before


def test_failed_run_leaves_nothing_that_blocks(tmp_path, tiny_bert, rows):
    train = write_csv(tmp_path / "train.csv", rows)
    out = tmp_path / "run"
    message = one_line_error(invoke(["classify", "--model", tmp_path / "no-model", "--train-file", train,
                                     "--output-dir", out, *QUICK]))
    assert "no-model" in message
    assert not out.exists()
    check = invoke(["classify", "--model", tiny_bert, "--train-file", train, "--output-dir", out, "--dry-run", *QUICK])
    assert check.exit_code == 0 and "(new)" in check.output, check.output
    result = invoke(["classify", "--model", tiny_bert, "--train-file", train, "--output-dir", out, *QUICK])
    assert result.exit_code == 0, result.output


def test_unstarted_run_is_reused_without_overwrite(tmp_path, tiny_bert, rows):
    """A run killed while loading leaves its marker and recipe.yaml: the same command starts over."""
    from finetune.outputs.run_dir import mark_run_dir

    train = write_csv(tmp_path / "train.csv", rows)
    out = tmp_path / "run"
    out.mkdir()
    mark_run_dir(out)
    (out / "recipe.yaml").write_text("task: classification\n")
    check = invoke(["check", "--help"])
    assert check.exit_code == 0
    result = invoke(["classify", "--model", tiny_bert, "--train-file", train, "--output-dir", out, *QUICK])
    assert result.exit_code == 0, result.output


def test_dry_run_reports_what_the_run_would_refuse(run_dir, tiny_bert):
    args = ["classify", "--model", tiny_bert, "--train-file", run_dir.parent / "train.csv", "--output-dir", run_dir,
            *QUICK]
    real = one_line_error(invoke(args))
    assert one_line_error(invoke([*args, "--dry-run"])) == real
    ok = invoke([*args, "--dry-run", "--overwrite"])
    assert ok.exit_code == 0 and "replaced (--overwrite)" in ok.output, ok.output


def test_symlinked_output_dir_with_overwrite(tmp_path, run_dir, tiny_bert):
    link = tmp_path / "link"
    link.symlink_to(run_dir)
    before = fingerprint(run_dir)
    message = one_line_error(invoke(["classify", "--model", tiny_bert, "--train-file", run_dir.parent / "train.csv",
                                     "--output-dir", link, "--overwrite", *QUICK]))
    assert "symbolic link" in message
    assert fingerprint(run_dir) == before


def test_output_dir_below_a_file(tmp_path, tiny_bert, rows):
    train = write_csv(tmp_path / "train.csv", rows)
    message = one_line_error(invoke(["classify", "--model", tiny_bert, "--train-file", train,
                                     "--output-dir", tmp_path / "train.csv" / "run", *QUICK]))
    assert "is a file" in message


# ---- one writer per run directory ------------------------------------------------------------------------------


def test_second_writer_is_refused_naming_the_first(run_dir, tiny_bert):
    from finetune.outputs.lock import RunLock

    before = fingerprint(run_dir)
    args = ["classify", "--model", tiny_bert, "--train-file", run_dir.parent / "train.csv", "--output-dir", run_dir,
            "--overwrite", *QUICK]
    with RunLock(run_dir):  # another run holds it (flock is per open file, so this process counts as another)
        message = one_line_error(invoke(args))
        assert f"process {os.getpid()}" in message and "being written" in message
        assert "being written" in one_line_error(invoke([*args, "--dry-run"]))
        resume = one_line_error(invoke(["train", run_dir / "recipe.yaml", "--resume"]))
        assert "finished run" in resume or "being written" in resume
        after = fingerprint(run_dir)
    assert {k: v for k, v in after.items() if not k.startswith(".finetune.")} == \
           {k: v for k, v in before.items() if not k.startswith(".finetune.")}


def test_stale_lock_of_a_killed_run_is_taken_over(run_dir, tiny_bert, caplog):
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run_dir / ".finetune.lock").write_text("")
    (run_dir / ".finetune.owner").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(),
                                                          "command": "finetune classify"}))
    result = invoke(["classify", "--model", tiny_bert, "--train-file", run_dir.parent / "train.csv",
                     "--output-dir", run_dir, "--overwrite", *QUICK])
    assert result.exit_code == 0, result.output
    assert "has ended" in caplog.text
    assert not (run_dir / ".finetune.owner").exists()


def test_a_run_can_be_replaced_from_its_own_recipe(run_dir):
    """`finetune train runs/x/recipe.yaml --overwrite`: the run's own recipe.yaml is finetune's file, read first."""
    old_id = json.loads((run_dir / ".finetune-run").read_text())["run_id"]
    result = invoke(["train", run_dir / "recipe.yaml", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "metrics.json").read_text())["run_id"] != old_id


def test_a_users_recipe_inside_the_output_dir_is_protected(tmp_path, run_dir):
    (run_dir / "plots").mkdir(exist_ok=True)
    mine = run_dir / "plots" / "mine.yaml"
    mine.write_text((run_dir / "recipe.yaml").read_text())
    before = fingerprint(run_dir)
    message = one_line_error(invoke(["train", mine, "--overwrite"]))
    assert "contains the recipe" in message
    assert fingerprint(run_dir) == before
