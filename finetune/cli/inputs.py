"""Inputs for `finetune predict`: --text/--text-pair values and --file contents, as (text, pair-or-None)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from finetune.errors import UserError


def load_inputs(texts: list[str], pairs: list[str], file: Path | None) -> list[tuple[str, str | None]]:
    """Inputs from --text/--text-pair and --file, as (text, pair-or-None)."""
    if pairs and len(pairs) != len(texts):
        raise UserError(f"{len(texts)} --text but {len(pairs)} --text-pair: give one --text-pair per --text.")
    inputs: list[tuple[str, str | None]] = [(text, pairs[i] if pairs else None) for i, text in enumerate(texts)]
    if file is not None:
        inputs += _read_input_file(file)
    if not inputs:
        raise UserError("Nothing to predict: pass --text \"...\" (repeatable) or --file FILE.")
    return inputs


def _read_input_file(file: Path) -> list[tuple[str, str | None]]:
    if not file.is_file():
        raise UserError(f"Input file not found: {file}.")
    try:
        content = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{file}: not UTF-8 text ({error.reason}). Convert it to UTF-8.") from error
    suffix = file.suffix.lower()
    if suffix in (".jsonl", ".csv"):
        rows = ([json.loads(line) for line in content.splitlines() if line.strip()] if suffix == ".jsonl"
                else list(csv.DictReader(content.splitlines())))
        return [_row_to_input(row, file) for row in rows]
    return [(parts[0], parts[1] if len(parts) > 1 else None)
            for parts in (line.split("\t", 1) for line in content.splitlines() if line.strip())]


def _row_to_input(row: dict[str, Any], file: Path) -> tuple[str, str | None]:
    values = [str(value) for key, value in row.items() if key not in ("label", "idx", "id") and value is not None]
    if not values:
        raise UserError(f"{file}: a row has no text column: {row}.")
    return values[0], values[1] if len(values) > 1 else None


def load_conversations(messages: list[str], file: Path | None) -> list[list[dict[str, str]]]:
    """Chat inputs: the --message turns as one conversation (user first, alternating), and the conversations of a
    .jsonl file whose rows have a messages or conversations column; none when neither is given."""
    conversations = []
    if messages:
        if len(messages) % 2 == 0:
            raise UserError(f"{len(messages)} --message given: give an odd number (user, assistant, user, ...), so the "
                            f"last one is the user's turn to answer.")
        conversations.append([{"role": "user" if index % 2 == 0 else "assistant", "content": text}
                              for index, text in enumerate(messages)])
    if file is not None and file.suffix.lower() == ".jsonl" and file.is_file():
        from finetune.tasks.chat_format import conversation_problem, message_layout, row_messages

        rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        layout = message_layout(list(rows[0])) if rows and isinstance(rows[0], dict) else None
        for number, row in enumerate(rows if layout else [], start=1):
            turns = row_messages(row, layout)  # type: ignore[arg-type]
            problem = conversation_problem(turns, need_reply=False)
            if problem is not None:
                raise UserError(f"{file} row {number}: {problem}.")
            conversations.append(turns)
    return conversations
