"""Files a run leaves behind: written atomically, so an interrupted run never leaves one that looks finished."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

_LIBRARIES = ("finetune", "torch", "transformers", "datasets", "accelerate", "tokenizers", "evaluate", "peft")


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, then rename over `path` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; a plain open() would give 0666 less the umask. Same as that, so another
        # user or a serving account can read the run's files where the umask allows it.
        os.fchmod(handle, 0o666 & ~current_umask())
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask (reading it means setting it: restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def readable_as_umask_allows(folder: Path) -> None:
    """Give the owner-only (0600) files directly in `folder` the mode a plain open() would have: libraries that
    write through a temporary file (safetensors' model.safetensors here) leave 0600, so a serving account could not
    read the model. Files with any other mode are left as they are."""
    mode = 0o666 & ~current_umask()
    for path in Path(folder).iterdir():
        if path.is_file() and not path.is_symlink() and (path.stat().st_mode & 0o777) == 0o600 and mode != 0o600:
            path.chmod(mode)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line (UTF-8, non-ASCII kept as is), written atomically."""
    write_text_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
