"""`finetune push`: upload a run (model, tokenizer, card, results) to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

from finetune.errors import UserError
from finetune.outputs.run_dir import is_model_folder

# Checkpoints and training internals stay local: the Hub repo gets the final model and its reports.
IGNORE = ["checkpoint-*", "checkpoint-*/**", "*.tmp", ".*", "training_args.bin"]


def push_run(run_dir: Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Create (or reuse) `repo_id` and upload the run; returns the repo URL."""
    if not is_model_folder(run_dir):
        raise UserError(f"{run_dir} holds no trained model: push a finished run directory.")
    if "/" not in repo_id or repo_id.count("/") != 1:
        raise UserError(f"--repo-id '{repo_id}' must look like user/name or org/name.")
    from huggingface_hub import HfApi, get_token

    from finetune.hub import hub_is_reachable

    token = token or get_token()
    if not token:
        raise UserError("No Hugging Face token: run `hf auth login` or set HF_TOKEN, then push again.")
    if not hub_is_reachable():
        raise UserError("The Hugging Face Hub cannot be reached (offline or HF_HUB_OFFLINE=1): connect and retry.")
    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(run_dir), repo_id=repo_id, ignore_patterns=IGNORE,
                      commit_message=f"Upload {run_dir.name} with finetune")
    return str(url)
