"""What a checkpoint is and what it was trained for, for `finetune evaluate`.

A checkpoint is a run directory, a checkpoint-N folder inside one, a model folder, a Hub id or a LoRA adapter. Its
task comes from the run's recipe.yaml, else from its architecture (`*ForSequenceClassification`,
`*ForConditionalGeneration`, `*ForCausalLM`) or its adapter's PEFT task type; a checkpoint of another kind than a
benchmark scores is a clear error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError

if TYPE_CHECKING:
    from finetune.config.recipe import Recipe
    from finetune.eval.suites import BenchmarkTask

FAMILIES = {"classification": "classification", "summarization": "seq2seq", "translation": "seq2seq",
            "generation": "generation"}
_PEFT_TASKS = {"SEQ_CLS": "classification", "SEQ_2_SEQ_LM": "summarization", "CAUSAL_LM": "generation"}
_CHECKPOINT_DIR = re.compile(r"checkpoint-(\d+)$")


def task_of_architecture(architecture: str | None) -> str | None:
    """classification / summarization (any encoder-decoder) / generation from a model class name, or None."""
    name = architecture or ""
    if name.endswith("ForSequenceClassification"):
        return "classification"
    if name.endswith(("ForConditionalGeneration", "ForSeq2SeqLM")):
        return "summarization"
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return "generation"
    return None


@dataclass
class Checkpoint:
    spec: str  # as the user wrote it
    path: Path | None  # None: a Hub id
    recipe: Recipe | None  # the run's recipe.yaml (a checkpoint-N folder: its run's)
    task: str | None
    architecture: str | None
    adapter: bool = False
    config_source: str = ""  # where config.json is (an adapter checkpoint: its run directory)
    tokenizer_source: str = ""

    @property
    def slug(self) -> str:
        return checkpoint_slug(self.spec)

    @property
    def step(self) -> int | None:
        match = _CHECKPOINT_DIR.search(self.path.name) if self.path else None
        return int(match.group(1)) if match else None


def checkpoint_slug(spec: str) -> str:
    """A readable folder name: runs/a -> runs__a, org/model -> org__model (lm-evaluation-harness's convention)."""
    from finetune.eval.suites import slugify

    path = Path(spec).expanduser()
    if path.exists():
        resolved = path.resolve()
        try:
            parts = resolved.relative_to(Path.cwd().resolve()).parts
        except ValueError:  # outside the working directory: its last two names
            parts = resolved.parts[-2:]
    else:
        parts = tuple(spec.split("/"))
    return slugify("__".join(part for part in parts if part not in ("", ".", "..")))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot be read as JSON ({error}).") from error


def resolve_checkpoint(spec: str) -> Checkpoint:
    from finetune.models.lora import ADAPTER_CONFIG, is_adapter_dir

    path = Path(spec).expanduser()
    if not path.exists():
        if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
            raise UserError(f"Checkpoint not found: {spec}. Pass a run directory, a checkpoint-N folder in one, a "
                            f"model folder, a LoRA adapter folder or a Hub id.")
        from finetune.models.loading import load_config
        from finetune.config.recipe import ModelSection

        architecture = (load_config(ModelSection(name=spec)).architectures or [None])[0]
        return Checkpoint(spec, None, None, task_of_architecture(architecture), architecture,
                          config_source=spec, tokenizer_source=spec)
    if not path.is_dir():
        raise UserError(f"{spec} is a file; a checkpoint is a folder (a run directory or a model folder).")
    adapter = is_adapter_dir(path)
    in_run = _CHECKPOINT_DIR.search(path.name) is not None
    recipe_file = next((file for file in (path / "recipe.yaml", path.parent / "recipe.yaml")
                        if file.is_file() and (file.parent == path or in_run)), None)
    from finetune.config.recipe import load_recipe

    recipe = load_recipe(recipe_file) if recipe_file else None
    config_dir = next((d for d in (path, path.parent) if (d / "config.json").is_file() and (d == path or adapter)),
                      None)
    if config_dir is None and not adapter:
        hint = (" It holds checkpoint-N folders: pass one of them, or add --all-checkpoints."
                if any(path.glob("checkpoint-*")) else "")
        raise UserError(f"{path} holds no model (no config.json or {ADAPTER_CONFIG}).{hint}")
    architecture = (_read_json(config_dir / "config.json").get("architectures") or [None])[0] if config_dir else None
    adapter_config = _read_json(path / ADAPTER_CONFIG) if adapter else {}
    task = recipe.task if recipe else (task_of_architecture(architecture)
                                       or _PEFT_TASKS.get(adapter_config.get("task_type", "")))
    base = adapter_config.get("base_model_name_or_path") or ""
    tokenizer_dir = next((d for d in (path, path.parent) if (d / "tokenizer_config.json").is_file()), None)
    return Checkpoint(spec, path, recipe, task, architecture, adapter,
                      config_source=str(config_dir) if config_dir else base,
                      tokenizer_source=str(tokenizer_dir) if tokenizer_dir else (base or str(path)))


def evaluation_task_name(checkpoint: Checkpoint, spec: BenchmarkTask, overrides: dict[str, Any]) -> str:
    """The task to score as; a checkpoint of another kind than the benchmark wants is a clear error."""
    wanted = overrides.get("task") or spec.kind()
    have = checkpoint.task
    where = "its recipe.yaml" if checkpoint.recipe else f"its architecture {checkpoint.architecture or 'unknown'}"
    if have is None:
        if wanted:
            return wanted
        raise UserError(f"Cannot tell what {checkpoint.spec} was trained for ({where}, no recipe.yaml): it has no "
                        f"task head finetune knows. Pass --set task=classification (or summarization, translation, "
                        f"generation).")
    if wanted is None:
        return have
    if FAMILIES[wanted] != FAMILIES[have]:
        raise UserError(
            f"{checkpoint.spec} is a {have} checkpoint (from {where}), but this benchmark scores {wanted} "
            f"checkpoints. Pass a {wanted} checkpoint ({_KIND_HINTS[wanted]}), or another --benchmark.")
    return wanted


_KIND_HINTS = {"classification": "a *ForSequenceClassification model, e.g. a `finetune classify` run",
               "summarization": "an encoder-decoder model, e.g. a `finetune summarize` run",
               "translation": "an encoder-decoder model, e.g. a `finetune translate` run",
               "generation": "a causal language model, e.g. a `finetune generate` run"}
