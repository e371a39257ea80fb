"""Exact match of a final answer, as lm-evaluation-harness scores GSM8K (lm_eval/tasks/gsm8k/gsm8k.yaml, v3).

References end with `#### <answer>` (GSM8K's worked solutions). A reply's answer is taken two ways, both reported:

- strict: the first `#### <number>` in the reply (regex `#### (\\-?[0-9\\.\\,]+)`, take_first), the format the
  training data teaches;
- flexible: the last number anywhere in the reply (regex `(-?[$0-9.,]{2,})|(-?[0-9]+)`, group_select -1).

Before comparing, both sides lose what lm-eval's `regexes_to_ignore` removes (commas, `$`, everything up to
`#### `, a final full stop) and are compared case-insensitively; a reply with no match scores as `[invalid]`.
Metric names: exact_match_strict and exact_match_flexible (lm-eval: `exact_match,strict-match` and
`exact_match,flexible-extract`).
"""

from __future__ import annotations

import re
from typing import Any

STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
IGNORED = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))
INVALID = "[invalid]"
FINAL_ANSWER_MARK = "#### "


def has_final_answers(references: list[str | None]) -> bool:
    """Whether every reference ends with a GSM8K-style `#### answer`: then exact match is scored."""
    return bool(references) and all(reference is not None and FINAL_ANSWER_MARK in reference
                                    for reference in references)


def _extract(pattern: re.Pattern[str], text: str, select: int) -> str:
    matches = pattern.findall(text)
    if not matches:
        return INVALID
    match = matches[select]
    if isinstance(match, tuple):  # several groups: the one that matched
        match = next((group for group in match if group), "")
    return str(match).strip()


def strict_answer(reply: str) -> str:
    return _extract(STRICT, reply, 0)


def flexible_answer(reply: str) -> str:
    return _extract(FLEXIBLE, reply, -1)


def normalise(text: str) -> str:
    for pattern in IGNORED:
        text = pattern.sub("", text)
    return text.lower()


def answer_scores(predictions: list[str], references: list[str], records: list[dict[str, Any]] | None = None,
                  ) -> dict[str, float]:
    """exact_match_strict and exact_match_flexible over all replies; each record (if given) gets the answers taken
    from its reply and the reference's."""
    strict = flexible = 0
    for index, (prediction, reference) in enumerate(zip(predictions, references)):
        gold = normalise(reference)
        taken = strict_answer(prediction), flexible_answer(prediction)
        strict += normalise(taken[0]) == gold
        flexible += normalise(taken[1]) == gold
        if records is not None:
            records[index].update(answer=gold, answer_strict=taken[0], answer_flexible=taken[1])
    count = max(len(predictions), 1)
    return {"exact_match_strict": strict / count, "exact_match_flexible": flexible / count}


def answer_hits(records: list[dict[str, Any]]) -> dict[str, list[float]] | None:
    """Per reply, 1.0 where its strict / flexible answer is the reference's (the records answer_scores filled in),
    for bootstrap standard errors; None when the records carry no answers."""
    if not records or any("answer_strict" not in record for record in records):
        return None
    return {f"exact_match_{kind}": [float(normalise(record[f"answer_{kind}"]) == record["answer"])
                                     for record in records] for kind in ("strict", "flexible")}

