"""Every use of a private (or undocumented) API of transformers, datasets, huggingface_hub, PEFT or accelerate, in
one place. Each shim has a test in tests/test_compat.py that fails loudly, naming the shim, when the library
changes under it; fix the shim there and nothing else moves.

Imports of the libraries stay inside the functions: this module is imported by code the CLI loads at start-up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# ---- transformers.Trainer: the private methods finetune overrides ------------------------------------------------

# method name -> the parameters finetune's overrides take (checked against the installed Trainer by the tests).
TRAINER_PRIVATE_METHODS = {
    "_get_eval_sampler": ("eval_dataset",),
    "_get_train_sampler": ("train_dataset",),
    "_issue_warnings_after_load": ("load_result",),
}


class TrainerHooks:
    """Mix into a Trainer subclass (before the Trainer) to override its private sampler and load-warning methods
    through public names: `eval_sampler`, `train_sampler` and `ignore_load_warnings`. A hook returning None (or
    False) keeps the Trainer's own behaviour."""

    def eval_sampler(self, dataset: Any) -> Any:
        return None

    def train_sampler(self, dataset: Any) -> Any:
        return None

    def ignore_load_warnings(self, load_result: Any) -> bool:
        return False

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        sampler = self.eval_sampler(eval_dataset)
        return sampler if sampler is not None else super()._get_eval_sampler(eval_dataset)  # type: ignore[misc]

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset  # type: ignore[attr-defined]
        sampler = self.train_sampler(dataset)
        return sampler if sampler is not None else super()._get_train_sampler(train_dataset)  # type: ignore[misc]

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        if not self.ignore_load_warnings(load_result):
            super()._issue_warnings_after_load(load_result)  # type: ignore[misc]


def generation_config_kept(trainer_class: type) -> type:
    """`trainer_class` (a Seq2SeqTrainer) with the model's generation_config left as prediction_step found it.

    transformers 5.24's Seq2SeqTrainer.prediction_step fills the model's own generation_config with default values
    after each generate ("Temporary hack" in trainer_seq2seq.py): max_length becomes 20 next to the recipe's
    max_new_tokens, so generate() warns that both are set on every later batch, and the saved
    generation_config.json carries a max_length the run never chose. The settings it filled in are unset again.
    """

    class GenerationConfigKept(trainer_class):
        def prediction_step(self, model: Any, inputs: Any, prediction_loss_only: bool, ignore_keys: Any = None,
                            **gen_kwargs: Any) -> Any:
            config = self.model.generation_config
            unset = [name for name, value in vars(config).items() if value is None]
            try:
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys, **gen_kwargs)
            finally:
                for name in unset:
                    setattr(config, name, None)

    return GenerationConfigKept


def tied_weight_keys(model: Any) -> set[str]:
    """Names of the weights a model ties to others (GPT-2's lm_head is its input embedding); a private attribute
    that transformers 5 keeps as a list or a mapping."""
    keys = getattr(model, "_tied_weights_keys", None) or ()
    return set(keys)


def use_causal_lm_loss(model: Any) -> Any:
    """Name the causal LM loss for models whose class name does not say it (GPT2LMHeadModel): transformers 5 derives
    the undocumented `loss_type` attribute from the class name and otherwise warns at every run that `loss_type=None`
    is unrecognized, then uses this same loss. Returns the model."""
    if getattr(model, "loss_type", "unknown") is None:
        model.loss_type = "ForCausalLM"
    return model


def conv1d_class() -> type:
    """GPT-2's Conv1D layer (a Linear with its weight transposed), from transformers' internal pytorch_utils."""
    from transformers.pytorch_utils import Conv1D

    return Conv1D


# ---- datasets -------------------------------------------------------------------------------------------------------


def dataset_fingerprint(dataset: Any) -> str:
    """The fingerprint datasets derives from a file-backed split and every transform since (private attribute)."""
    return str(dataset._fingerprint)


def dataset_from_arrow_file(path: Path, fingerprint: str) -> Any:
    """A memory-mapped dataset from an Arrow file written by datasets, with a fingerprint of our choosing (the
    public `Dataset.from_file` derives its own, which would change every cache key computed from it)."""
    import datasets
    from datasets.table import MemoryMappedTable

    return datasets.Dataset(MemoryMappedTable.from_file(str(path)), fingerprint=fingerprint)


# ---- huggingface_hub / datasets: offline mode after import -----------------------------------------------------------

# Modules that read HF_HUB_OFFLINE into a constant when imported.
OFFLINE_FLAG_MODULES = ("huggingface_hub.constants", "datasets.config")


def set_hub_offline_in_loaded_modules() -> None:
    """huggingface_hub and datasets read HF_HUB_OFFLINE at import; update the copies already imported."""
    for module_name in OFFLINE_FLAG_MODULES:
        module = sys.modules.get(module_name)
        if module is not None:
            module.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]


# ---- PEFT ---------------------------------------------------------------------------------------------------------


def peft_default_lora_targets(model_type: str | None) -> list[str] | None:
    """PEFT's own table of LoRA target modules per model type (an undocumented constant)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    targets = DEFAULTS.get(model_type) if model_type else None
    return list(targets) if targets else None


# ---- accelerate ---------------------------------------------------------------------------------------------------

# Run as `python -m ACCELERATE_LAUNCH_MODULE ...`: `accelerate launch` without depending on the console script.
ACCELERATE_LAUNCH_MODULE = "accelerate.commands.launch"


def accelerate_default_config_file() -> Path:
    """Where `accelerate config` writes its default config (internal module attribute)."""
    from accelerate.commands.config import default_config_file

    return Path(default_config_file)


# ---- transformers.Trainer: finishing a run whose training had already ended ------------------------------------


def restore_finished_training(trainer: Any, checkpoint: Path) -> dict[str, Any]:
    """Put `trainer` in the state training ended in, from `checkpoint` (saved at max_steps), without a step.

    `Trainer.train(resume_from_checkpoint=...)` checks max_steps only after a step, so resuming a checkpoint at
    max_steps that ends mid-epoch trains one step too many. This loads the weights and state instead (and the best
    checkpoint, as load_best_model_at_end would have). Uses Trainer._load_from_checkpoint and _load_best_model."""
    from transformers import TrainerState

    trainer._load_from_checkpoint(str(checkpoint))
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    best = trainer.state.best_model_checkpoint
    if trainer.args.load_best_model_at_end and best and Path(best).is_dir():
        trainer._load_best_model()
    losses = [entry["train_loss"] for entry in trainer.state.log_history if "train_loss" in entry]
    return {"epoch": trainer.state.epoch, **({"train_loss": losses[-1]} if losses else {})}


# ---- transformers' TensorBoardCallback: where it writes ------------------------------------------------------------


def keep_tensorboard_events_in(trainer: Any, run_dir: Path) -> None:
    """Point the Trainer's TensorBoard writer at `run_dir`/runs/<time>_<host> (transformers' own layout) now.

    TensorBoardCallback picks `output_dir/runs/...` only in on_train_begin; anything logged before (the evaluation
    of the untrained model) creates its writer with log_dir=None, which torch puts in ./runs of the working
    directory. Its `logging_dir` attribute is undocumented (set from TENSORBOARD_LOGGING_DIR in __init__)."""
    import socket
    from datetime import datetime

    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and getattr(callback, "logging_dir", None) is None:
            callback.logging_dir = str(Path(run_dir) / "runs" /
                                       f"{datetime.now():%b%d_%H-%M-%S}_{socket.gethostname()}")
