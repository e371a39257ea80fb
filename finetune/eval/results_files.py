"""The files `finetune evaluate` writes, named and laid out as lm-evaluation-harness writes them.

    OUTPUT_DIR/<model>/results_<ISO time>.json           every task's metrics, standard errors, configs, hashes
    OUTPUT_DIR/<model>/samples_<task>_<ISO time>.jsonl   one line per example: doc, target, response, hashes

The names follow lm-eval's EvaluationTracker (`results_{date_id}.json`, `samples_{task}_{date_id}.jsonl`, date_id
being `datetime.now().isoformat()` with ':' as '-'), so its result finders (`get_results_filenames`,
`get_file_task_name`, `get_file_datetime`) read them, and a re-run adds files instead of overwriting. The task name
is the benchmark task's key (sst2, mnli_matched), whichever flag named the benchmark.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

# Where a task's prediction record keeps the gold answer and the model's answer (the first key present counts).
_TARGET_KEYS = ("label", "labels", "reference", "references", "gold", "target")
_RESPONSE_KEYS = ("prediction", "predicted", "output")
# Per-row numbers of the model's answer: not part of the document that was scored.
_RESPONSE_DETAILS = ("score", "scores", "loss", "tokens", "answer_strict", "answer_flexible")


def date_id(moment: datetime | None = None) -> str:
    """lm-eval's file time stamp: ISO 8601 with '-' for ':' (no '_', which its file-name parsers split on)."""
    return (moment or datetime.now()).isoformat().replace(":", "-")


def task_file_name(task: str) -> str:
    """lm-eval's sanitize_task_name: anything but letters, digits and '_' becomes '_'."""
    return re.sub(r"\W", "_", task)


def results_path(model_dir: Path, stamp: str) -> Path:
    return model_dir / f"results_{stamp}.json"


def samples_path(model_dir: Path, task: str, stamp: str) -> Path:
    return model_dir / f"samples_{task_file_name(task)}_{stamp}.jsonl"


def hash_string(text: str) -> str:
    """lm-eval's hash_string: sha256 hex digest of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def sample_record(doc_id: int, record: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    """One prediction record of a task as an lm-eval sample line; the task's own fields stay alongside.

    doc is what was scored (inputs and gold answer), the prompt is the inputs alone; their hashes, and the target's,
    are lm-eval's doc_hash, prompt_hash and target_hash, from which the task hash is built.
    """
    target_key = next((key for key in _TARGET_KEYS if key in record), None)
    response_key = next((key for key in _RESPONSE_KEYS if key in record), None)
    doc = {key: value for key, value in record.items() if key != response_key and key not in _RESPONSE_DETAILS}
    prompt = {key: value for key, value in doc.items() if key != target_key}
    target = record.get(target_key) if target_key else None
    response = record.get(response_key) if response_key else None
    return {"doc_id": doc_id, "doc": doc, "target": target, "arguments": {"gen_args_0": {"arg_0": _canonical(prompt)}},
            "resps": [[response]], "filtered_resps": [response], "filter": "none", "metrics": metrics,
            "doc_hash": hash_string(_canonical(doc)), "prompt_hash": hash_string(_canonical(prompt)),
            "target_hash": hash_string(_canonical(target)), **record}


def task_hash(samples: list[dict[str, Any]]) -> str:
    """lm-eval's cumulative task hash: sha256 of every sample's doc, prompt and target hashes in order."""
    return hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples))


def write_samples(records: list[dict[str, Any]], destination: Path, metrics: list[str]) -> str:
    """A task's prediction records written as lm-eval samples at `destination`; returns the task hash."""
    from finetune.outputs.files import write_jsonl

    samples = [sample_record(index, record, metrics) for index, record in enumerate(records)]
    write_jsonl(destination, samples)
    return task_hash(samples)


def git_hash() -> str | None:
    """The commit of the finetune source that scored (lm-eval records its own): None unless finetune runs from a git
    checkout of its own (an installed copy inside someone else's repository is not one)."""
    source = Path(__file__).resolve().parents[2]
    try:
        completed = subprocess.run(["git", "-C", str(source), "rev-parse", "--show-toplevel", "--short", "HEAD"],
                                   capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = completed.stdout.split()
    if completed.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != source:
        return None
    return lines[1]
