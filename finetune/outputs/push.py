"""`finetune push`: upload a run (model, tokenizer, card, results) to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

from finetune.errors import UserError
from finetune.outputs.run_dir import is_model_folder

# Checkpoints and training internals stay local: the Hub repo gets the final model and its reports.
IGNORE = ["checkpoint-*", "checkpoint-*/**", "*.tmp", ".*", "training_args.bin"]


def _token_and_reach(repo_id: str, option: str, token: str | None) -> str:
    if "/" not in repo_id or repo_id.count("/") != 1:
        raise UserError(f"{option} '{repo_id}' must look like user/name or org/name.")
    from huggingface_hub import get_token

    from finetune.hub import hub_is_reachable

    token = token or get_token()
    if not token:
        raise UserError("No Hugging Face token: run `hf auth login` or set HF_TOKEN, then push again.")
    if not hub_is_reachable():
        raise UserError("The Hugging Face Hub cannot be reached (offline or HF_HUB_OFFLINE=1): connect and retry.")
    return token


def check_push_target(repo_id: str, token: str | None = None) -> None:
    """Before training, for `push_to_hub:`: the repo id's form, a token, the Hub reachable, and a token that may
    write to the repo's namespace. A run that cannot be uploaded fails now, not after hours of training."""
    token = _token_and_reach(repo_id, "push_to_hub", token)
    from huggingface_hub import HfApi

    try:
        account = HfApi(token=token).whoami()
    except Exception as error:  # HTTP 401 and friends: the message says which
        raise UserError(f"push_to_hub: the Hub refused the token ({str(error).splitlines()[0]}); run "
                        f"`hf auth login` again.") from error
    role = ((account.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise UserError("push_to_hub: the Hugging Face token is read-only; create a write token and `hf auth login`.")
    namespaces = {account.get("name")} | {org.get("name") for org in account.get("orgs") or []}
    owner = repo_id.split("/")[0]
    if owner not in namespaces:
        raise UserError(f"push_to_hub: the token cannot create repos under '{owner}' (it may under "
                        f"{', '.join(sorted(str(name) for name in namespaces if name))}); change push_to_hub.")


def push_run(run_dir: Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Create (or reuse) `repo_id` and upload the run; returns the repo URL."""
    if not is_model_folder(run_dir):
        raise UserError(f"{run_dir} holds no trained model: push a finished run directory.")
    token = _token_and_reach(repo_id, "--repo-id", token)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(run_dir), repo_id=repo_id, ignore_patterns=IGNORE,
                      commit_message=f"Upload {run_dir.name} with finetune")
    return str(url)
