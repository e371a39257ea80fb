"""The README's recipe reference, generated from the schema so that it cannot drift from it.

    python -m finetune.config.reference            print the table
    python -m finetune.config.reference README.md  rewrite the table between the markers in README.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from finetune.config.schema import Recipe

BEGIN = "<!-- recipe-reference: generated from finetune/config/schema.py; do not edit by hand -->"
END = "<!-- end of recipe-reference -->"


def _rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, str]]:
    rows: list[tuple[str, Any, str]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _rows(annotation, f"{prefix}{name}.")
        else:
            rows.append((f"{prefix}{name}", field.get_default(call_default_factory=True), field.description or ""))
    return rows


def reference_table() -> str:
    """Every recipe key with its default and meaning, as a Markdown table."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, meaning in _rows(Recipe):
        lines.append(f"| `{key}` | `{json.dumps(default)}` | {meaning} |")
    return "\n".join(lines) + "\n"


def with_reference(readme: str) -> str:
    """`readme` with the generated table between its markers."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + reference_table() + readme[end:]


if __name__ == "__main__":
    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
        path.write_text(with_reference(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(reference_table(), end="")
