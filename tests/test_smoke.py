"""`finetune smoke`: one tiny offline train -> evaluate -> save -> reload -> predict per registered task family."""

from __future__ import annotations

import tempfile


def test_smoke_proves_every_task_family_and_cleans_up(cli, monkeypatch, tmp_path):
    from finetune.tasks import families

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where its temporary folder goes
    result = cli(["smoke"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    declared = [family for family in families() if family.smoke is not None and family.tiny_model is not None]
    assert {family.name for family in declared} >= {"classification", "summarization", "translation", "generation"}
    for family in declared:
        line = next((line for line in lines if line.startswith(family.name + " ")), None)
        assert line is not None and " ok " in line, (family.name, result.output)
    assert len(lines) == len(declared) + 2, result.output  # a header, one line per family, the verdict
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


def test_tiny_model_trains_its_tokenizer_on_the_users_files(cli, tmp_path):
    import json

    from transformers import AutoTokenizer

    from tests.helpers import write_jsonl

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.en").write_text("zebra crossing\nquokka smiles\n", encoding="utf-8")
    (tmp_path / "data" / "train.de").write_text("zebrastreifen\nquokka lacht\n", encoding="utf-8")
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"translation": {"en": "axolotl", "de": "schwanzlurch"}}])
    result = cli(["tiny-model", "--task", "translation", "--train-file", tmp_path / "data" / "train",
                  "--train-file", pairs, "--output-dir", tmp_path / "tiny", "--vocab-size", 120])
    assert result.exit_code == 0, result.output
    assert "T5ForConditionalGeneration" in result.output and "6 texts" in result.output
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tiny")
    assert "schwanzlurch" in tokenizer.decode(tokenizer("schwanzlurch")["input_ids"], skip_special_tokens=True)
    assert json.loads((tmp_path / "tiny" / "config.json").read_text())["d_model"] == 32

    again = cli(["tiny-model", "--task", "translation", "--output-dir", tmp_path / "tiny"])
    assert again.exit_code == 2 and "not empty" in again.output
    missing = cli(["tiny-model", "--task", "generation", "--train-file", tmp_path / "nope.txt",
                   "--output-dir", tmp_path / "tiny2"])
    assert missing.exit_code == 2 and "nope.txt" in missing.output
