"""The README's offline examples run as written, so they cannot go stale: every ```bash block that follows a
`<!-- tested -->` line, in order, in one fresh folder (later blocks use what earlier ones wrote)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MARKED_BLOCK = re.compile(r"<!-- tested -->\n```bash\n(.*?)```", re.DOTALL)


def readme_commands(text: str) -> list[list[str]]:
    """The commands of the marked blocks: continuation lines joined, comments and blank lines dropped."""
    commands = []
    for block in MARKED_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def test_the_readme_marks_offline_examples_for_every_family():
    from finetune.tasks import families

    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert all(words[0] == "finetune" for words in commands), commands
    used = {words[1] for words in commands}
    assert {"smoke", "tiny-model", "predict", "evaluate"} <= used
    assert {family.command for family in families()} <= used


def test_the_readme_offline_examples_run(cli, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    transcript = []
    for words in readme_commands(README.read_text(encoding="utf-8")):
        result = cli(words[1:])
        assert result.exit_code == 0, f"{shlex.join(words)}\n{result.output}"
        transcript.append(f"$ {shlex.join(words)}\n{result.output}")
    if os.environ.get("FINETUNE_README_TRANSCRIPT"):  # to copy real outputs into the README
        Path(os.environ["FINETUNE_README_TRANSCRIPT"]).write_text("\n".join(transcript), encoding="utf-8")
