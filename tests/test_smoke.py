"""`finetune smoke`: one tiny offline train -> evaluate -> save -> reload -> predict per registered task family."""

from __future__ import annotations

import tempfile


def test_smoke_proves_every_task_family_and_cleans_up(cli, monkeypatch, tmp_path):
    from finetune.tasks import families

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where its temporary folder goes
    result = cli(["smoke"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for family in families():
        line = next((line for line in lines if line.startswith(family.name + " ")), None)
        assert line is not None and " ok " in line, (family.name, result.output)
    assert len(lines) == len(families()) + 2, result.output  # a header, one line per family, the verdict
    assert list(tmp_path.glob("finetune-smoke-*")) == []  # its temporary folder is gone


def test_smoke_runs_one_family_and_keeps_an_output_dir(cli, tmp_path):
    result = cli(["smoke", "--task", "translation", "--output-dir", tmp_path / "kept"])
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.output.splitlines()[1:-1]] == ["translation"]
    assert (tmp_path / "kept" / "translation" / "run" / "recipe.yaml").is_file()
    assert (tmp_path / "kept" / "translation" / "train.jsonl").is_file()


def test_smoke_names_the_families_for_an_unknown_task(cli):
    result = cli(["smoke", "--task", "translate"])
    assert result.exit_code == 2 and "translation" in result.output
