"""Chat data for causal LMs: the layouts a conversation arrives in, turned into one list of {role, content} turns,
and the checks that find malformed conversations (reported by row number).

Layouts, detected from the columns (first match wins):

- messages: OpenAI style, a `messages` column of `{"role": "system"|"user"|"assistant", "content": ...}` turns;
- conversations: ShareGPT style, a `conversations` column of `{"from": "system"|"human"|"gpt", "value": ...}`;
- a pair of columns: prompt/completion, instruction/output (Alpaca; a non-empty `input` is appended to the
  instruction after a blank line), question/answer, ...: one user turn and one assistant turn.

A `system` column, else data.system_prompt, puts a system turn first where a conversation has none. Pure Python: no
tokenizer here (templates and masks: chat_template.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")
# ShareGPT and other exports name the speakers differently.
ROLE_NAMES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
              "bot": "assistant", "model": "assistant", "chatgpt": "assistant"}
MESSAGE_COLUMNS = ("messages", "conversations")
# (prompt, completion) column names tried in order when the recipe names none.
PAIR_GUESSES = (("prompt", "completion"), ("prompt", "response"), ("instruction", "response"),
                ("instruction", "output"), ("input", "output"), ("question", "answer"))
# Instruction datasets (Alpaca, Dolly) keep an optional context next to the instruction; it belongs to the prompt.
CONTEXT_COLUMNS = ("input", "context")
SYSTEM_COLUMN = "system"
SHOWN_PROBLEMS = 5  # malformed rows named in a message; the rest are counted

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class ChatLayout:
    """Where a split's conversations are: a messages column, or a prompt and a completion column."""

    messages_column: str | None = None
    prompt_column: str | None = None
    completion_column: str | None = None

    def describe(self) -> str:
        if self.messages_column == "conversations":
            return "conversations (ShareGPT: from/value turns)"
        if self.messages_column:
            return f"{self.messages_column} (role/content turns)"
        return f"{self.prompt_column} -> user turn, {self.completion_column} -> assistant turn"

    def columns(self, available: list[str]) -> list[str]:
        """The columns conversations are read from (for the tokenization cache key)."""
        named = [self.messages_column, self.prompt_column, self.completion_column, SYSTEM_COLUMN, *CONTEXT_COLUMNS]
        return [column for column in dict.fromkeys(named) if column and column in available]


def message_layout(columns: list[str]) -> ChatLayout | None:
    """The layout of data that can only be chat (a messages or conversations column), else None."""
    column = next((name for name in MESSAGE_COLUMNS if name in columns), None)
    return ChatLayout(messages_column=column) if column else None


def chat_layout(columns: list[str], pair: tuple[str, str] | None) -> ChatLayout | None:
    """The layout of a split: a messages column, else the given (or guessed) prompt/completion pair."""
    layout = message_layout(columns)
    if layout is not None:
        return layout
    pair = pair or next((guess for guess in PAIR_GUESSES if all(column in columns for column in guess)), None)
    return ChatLayout(prompt_column=pair[0], completion_column=pair[1]) if pair else None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _turn(raw: Any) -> dict[str, Any] | None:
    """One turn as {role, content}, from role/content or from/value keys; None when it is neither."""
    if not isinstance(raw, dict):
        return None
    if "role" in raw or "content" in raw:
        return {"role": raw.get("role"), "content": raw.get("content")}
    if "from" in raw or "value" in raw:
        return {"role": raw.get("from"), "content": raw.get("value")}
    return None


def row_messages(row: dict[str, Any], layout: ChatLayout, system_prompt: str | None = None) -> Any:
    """A row's conversation as a list of turns (not yet checked: see `conversation_problem`)."""
    if layout.messages_column:
        raw = row.get(layout.messages_column)
        if not isinstance(raw, list):
            return raw  # reported by conversation_problem
        messages: list[Any] = []
        for turn in raw:
            normal = _turn(turn)
            if normal is not None and isinstance(normal["role"], str):
                normal["role"] = ROLE_NAMES.get(normal["role"].strip().lower(), normal["role"])
            messages.append(normal if normal is not None else turn)
    else:
        assert layout.prompt_column is not None and layout.completion_column is not None
        prompt = _text(row.get(layout.prompt_column))
        context = next((column for column in CONTEXT_COLUMNS if column in row
                        and column not in (layout.prompt_column, layout.completion_column)), None)
        if layout.prompt_column == "instruction" and context and _text(row.get(context)).strip():
            prompt = f"{prompt}\n\n{_text(row.get(context))}"
        messages = [{"role": "user", "content": prompt}]
        if layout.completion_column in row:  # a test split may come without answers
            messages.append({"role": "assistant", "content": _text(row.get(layout.completion_column))})
    system = row.get(SYSTEM_COLUMN) if layout.messages_column else None
    system = _text(system) if system is not None and _text(system).strip() else system_prompt
    starts_with_system = bool(messages) and isinstance(messages[0], dict) and messages[0].get("role") == "system"
    if system and not starts_with_system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def conversation_problem(messages: Any, need_reply: bool = True) -> str | None:
    """What is wrong with a conversation, or None: roles known, no empty turn, an optional system turn first, then
    user and assistant alternating from a user turn; `need_reply`: at least one assistant turn to learn from."""
    if not isinstance(messages, list) or not messages:
        return "no turns (expected a list of {role, content} turns)"
    expected = "user"
    for number, turn in enumerate(messages, start=1):
        if not isinstance(turn, dict) or "role" not in turn:
            return f"turn {number} is not a {{role, content}} object: {str(turn)[:60]}"
        role, content = turn["role"], turn.get("content")
        if role not in ROLES:
            return f"turn {number} has unknown role {role!r} (expected system, user or assistant)"
        if not isinstance(content, str) or not content.strip():
            return f"turn {number} ({role}) is empty"
        if role == "system":
            if number != 1:
                return f"turn {number} is a system turn after the start (only the first turn may be one)"
            continue
        if role != expected:
            if not any(earlier.get("role") == "user" for earlier in messages[:number - 1]):
                return f"turn {number} is an assistant turn before any user turn"
            return f"turn {number} is a second {role} turn in a row (user and assistant must alternate)"
        expected = "assistant" if role == "user" else "user"
    if need_reply and not any(turn["role"] == "assistant" for turn in messages):
        return "no assistant turn to learn from"
    return None


def split_problems(rows: list[dict[str, Any]], layout: ChatLayout, system_prompt: str | None,
                   need_reply: bool = True) -> list[tuple[int, str]]:
    """(1-based row number, problem) of every malformed conversation of a split."""
    problems = []
    for number, row in enumerate(rows, start=1):
        problem = conversation_problem(row_messages(row, layout, system_prompt), need_reply)
        if problem is not None:
            problems.append((number, problem))
    return problems


def describe_problems(split_name: str, problems: list[tuple[int, str]], total: int) -> str:
    """'3 of 120 train rows are malformed: row 4: ...; row 9: ...'."""
    shown = "; ".join(f"row {number}: {problem}" for number, problem in problems[:SHOWN_PROBLEMS])
    more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    return f"{len(problems)} of {total} {split_name} conversations are malformed: {shown}{more}"


def last_exchange(messages: Messages) -> tuple[Messages, str | None]:
    """(the turns before the last assistant turn, that turn's text): what a model is asked and should answer."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "assistant":
            return messages[:index], messages[index]["content"]
    return messages, None


def readable(messages: Messages) -> str:
    """A conversation as a person reads it: 'user: ...' lines."""
    return "\n".join(f"{turn['role']}: {turn['content']}" for turn in messages)
