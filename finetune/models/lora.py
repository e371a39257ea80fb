"""LoRA adapters through PEFT, for every task: train a few low-rank matrices instead of the whole model.

PEFT is an optional extra (`pip install 'finetune[lora]'`); it is imported only when a recipe asks for LoRA, and
asking without it is a UserError that names the install command.

A LoRA run directory is a standard PEFT folder: `adapter_model.safetensors` + `adapter_config.json` (written by PEFT
through `trainer.save_model`), the tokenizer, and `base_model_config.json`: the base model's config with the task's
labels (see `save_base_config`). It holds no `config.json`, so transformers' own PEFT integration
(`AutoModelFor*.from_pretrained(run)`, `pipeline(model=run)`) and `peft.AutoPeftModelFor*` load it as an adapter on
its base model; a classifier's labels reach them as `id2label`/`label2id` keyword arguments (`label_kwargs`), since
both libraries take the head size from the base model's config. `load_run_model` loads either kind of run;
`export_merged` folds the adapters into a plain model. The caller names the transformers Auto class and PEFT task
type (its task family's): nothing here knows tasks.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.compat import conv1d_class, peft_default_lora_targets
from finetune.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from finetune.config.schema import ModelSection, PeftSection

MISSING_PEFT = "LoRA needs the peft package: pip install 'finetune[lora]'"
# Attention projections adapted when peft's own table has no entry for a model type.
FALLBACK_TARGET_MODULES = {"bert": ["query", "value"], "gpt2": ["c_attn"], "llama": ["q_proj", "v_proj"],
                           "t5": ["q", "v"], "distilbert": ["q_lin", "v_lin"]}
# Unknown architectures: the first of these name sets that the model's linear layers all have.
_TARGET_GUESSES = (("q_proj", "v_proj"), ("query", "value"), ("q", "v"), ("q_lin", "v_lin"), ("c_attn",),
                   ("query_key_value",), ("Wqkv",), ("qkv_proj",))
# Classification heads are new (randomly initialised) layers: they train in full next to the adapters.
_HEAD_MODULES = ("pre_classifier", "classifier", "score")


def require_peft() -> None:
    try:
        import peft  # noqa: F401
    except ImportError as error:
        raise UserError(MISSING_PEFT) from error


def _linear_module_names(model: Any) -> set[str]:
    """Last name part of every linear layer (GPT-2's Conv1D included): the names target_modules can match."""
    import torch
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
            if isinstance(module, (torch.nn.Linear, conv1d_class()))}


def default_target_modules(model: Any) -> list[str]:
    """The attention projections LoRA adapts when the recipe names none: peft's table, ours, then a guess."""
    model_type = getattr(model.config, "model_type", None)
    known = peft_default_lora_targets(model_type) or FALLBACK_TARGET_MODULES.get(model_type or "")
    if known:
        return list(known)
    names = _linear_module_names(model)
    for guess in _TARGET_GUESSES:
        if all(name in names for name in guess):
            return list(guess)
    raise UserError(f"No default LoRA target modules for model type '{model_type}'. Set peft.target_modules to "
                    f"some of its linear layers: {', '.join(sorted(names))}.")


def _targets_conv1d(model: Any, targets: list[str]) -> bool:
    """GPT-2's Conv1D stores its weight transposed (fan_in x fan_out); LoRA must know, or PEFT warns and flips it."""
    return any(isinstance(module, conv1d_class()) and name.rsplit(".", 1)[-1] in targets
               for name, module in model.named_modules())


@contextlib.contextmanager
def _quiet_version_skew() -> Iterator[None]:
    """PEFT calls a transformers property deprecated in 5.x; the FutureWarning is not the user's to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _head_modules(model: Any) -> list[str]:
    children = {name for name, _ in model.named_children()}
    return [name for name in _HEAD_MODULES if name in children]


def parameter_counts(model: Any) -> dict[str, int]:
    """Trainable and total parameters (for metrics.json: the point of LoRA is the first being small)."""
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    total = sum(parameter.numel() for parameter in model.parameters())
    return {"trainable_parameters": trainable, "total_parameters": total}


def apply_lora(model: PreTrainedModel, section: PeftSection, task_type: str) -> Any:
    """Wrap `model` in LoRA adapters as the recipe's `peft:` section says, for PEFT's `task_type` (SEQ_CLS, ...);
    only adapters (and a classifier head) stay trainable. Prints the trainable-parameter count."""
    require_peft()
    from peft import LoraConfig, get_peft_model

    targets = section.target_modules or default_target_modules(model)
    config = LoraConfig(task_type=task_type, r=section.r, lora_alpha=section.alpha, lora_dropout=section.dropout,
                        target_modules=targets, fan_in_fan_out=_targets_conv1d(model, targets),
                        modules_to_save=(_head_modules(model) or None) if task_type == "SEQ_CLS" else None)
    try:
        with _quiet_version_skew():
            adapted = get_peft_model(model, config)
    except ValueError as error:  # target modules that match no layer
        raise UserError(f"LoRA cannot adapt {targets}: {error}. Linear layers of this model: "
                        f"{', '.join(sorted(_linear_module_names(model)))}.") from error
    counts = parameter_counts(adapted)
    print(f"LoRA (r={section.r}, alpha={section.alpha}) on {', '.join(targets)}: training "
          f"{counts['trainable_parameters']:,} of {counts['total_parameters']:,} parameters "
          f"({100 * counts['trainable_parameters'] / counts['total_parameters']:.2f}%)", file=sys.stderr)
    return adapted


def save_base_config(model: Any, run_dir: Path) -> None:
    """Write the base model's config (with the task's labels and pad token) next to the adapter, as
    base_model_config.json: PEFT saves only the adapter, and a classifier cannot be rebuilt without its labels.
    Not as config.json, which would make transformers load the folder as a full model."""
    from finetune.outputs.run_dir import BASE_MODEL_CONFIG_FILE

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.config.to_json_file(run_dir / BASE_MODEL_CONFIG_FILE)
    if getattr(base, "generation_config", None) is not None and base.can_generate():
        base.generation_config.save_pretrained(run_dir)


def base_model_config_file(path: Path) -> Path | None:
    """The labelled base config of an adapter folder: its own, or its run's (a checkpoint-N folder); runs written
    before base_model_config.json existed kept it as config.json."""
    from finetune.outputs.run_dir import BASE_MODEL_CONFIG_FILE, MODEL_CONFIG_FILE

    path = Path(path)
    for folder in (path, path.parent):
        for name in (BASE_MODEL_CONFIG_FILE, MODEL_CONFIG_FILE):
            if (folder / name).is_file():
                return folder / name
    return None


def label_kwargs(path: Path) -> dict[str, Any]:
    """The keyword arguments that give a classifier adapter its head size and label names in plain transformers
    and PEFT (`AutoPeftModelForSequenceClassification.from_pretrained(run, **label_kwargs(run))`); {} when the
    adapter's config records no labels."""
    import json

    config_file = base_model_config_file(path)
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file else {}
    id2label = config.get("id2label")
    if not id2label or "label2id" not in config:
        return {}
    # A multi-label head (sigmoid per label) and its decision threshold travel with the labels.
    extra = ({key: config[key] for key in ("problem_type", "multi_label_threshold") if key in config}
             if config.get("problem_type") == "multi_label_classification" else {})
    return {"id2label": {int(index): name for index, name in id2label.items()},
            "label2id": {name: int(index) for name, index in config["label2id"].items()}, **extra}


def _base_model_section(run_dir: Path) -> ModelSection:
    """The base model of an adapter run: the run's recipe (revision, trust_remote_code), else the adapter config."""
    import json

    from finetune.config.schema import ModelSection
    from finetune.outputs.run_dir import ADAPTER_CONFIG_FILE, run_recipe

    recipe = run_recipe(run_dir)
    if recipe is not None and recipe.model.name:
        return recipe.model
    adapter = json.loads((run_dir / ADAPTER_CONFIG_FILE).read_text(encoding="utf-8"))
    return ModelSection(name=adapter["base_model_name_or_path"])


def load_run_model(run_dir: Path, auto_model: str, **base_kwargs: Any) -> Any:
    """The model of a run directory (or a checkpoint in one) for inference: full weights, or base model + adapter.
    `auto_model` names the transformers Auto class; `base_kwargs` go to the base model of an adapter (a classifier:
    ignore_mismatched_sizes, since the base may carry another head and the adapter brings its own)."""
    import transformers

    from finetune.models.loading import load_pretrained
    from finetune.outputs.run_dir import is_adapter_folder, require_model_folder

    run_dir = require_model_folder(Path(run_dir))
    auto_class = getattr(transformers, auto_model)
    if not is_adapter_folder(run_dir):
        model = auto_class.from_pretrained(run_dir)
    else:
        require_peft()
        from peft import PeftModel

        config_file = base_model_config_file(run_dir)
        kwargs: dict[str, Any] = dict(base_kwargs)
        if config_file is not None:  # the run's labels, pad token, ... (see save_base_config)
            kwargs["config"] = transformers.AutoConfig.from_pretrained(config_file)
        # The base model alone lacks the trained head, which transformers reports as missing: not so, the adapter
        # file holds it. Errors still show.
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            base = load_pretrained(auto_class, _base_model_section(run_dir), **kwargs)
        finally:
            transformers.logging.set_verbosity(verbosity)
        with _quiet_version_skew():
            model = PeftModel.from_pretrained(base, run_dir)
    model.eval()
    return model


def require_adapter_folder(run_dir: Path) -> Path:
    """`run_dir` when it holds a LoRA adapter; otherwise the error that says merging is not needed."""
    from finetune.outputs.run_dir import ADAPTER_CONFIG_FILE, is_adapter_folder

    if not is_adapter_folder(Path(run_dir)):
        raise UserError(f"{run_dir} holds no LoRA adapter ({ADAPTER_CONFIG_FILE}); only runs trained with --lora "
                        f"need merging, any other run directory already is a plain model.")
    return Path(run_dir)


def export_merged(run_dir: Path, output_dir: Path, auto_model: str) -> Path:
    """Fold a LoRA run's adapters into the base weights and save a plain transformers model + tokenizer."""
    from transformers import AutoTokenizer

    from finetune.outputs.run_dir import RECIPE_FILE, recipe_file_of

    run_dir, output_dir = require_adapter_folder(run_dir), Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise UserError(f"{output_dir} already exists and is not empty. Remove it or pass another --output-dir.")
    merged = load_run_model(run_dir, auto_model).merge_and_unload()
    merged.save_pretrained(output_dir)  # safetensors
    AutoTokenizer.from_pretrained(run_dir).save_pretrained(output_dir)
    # The recipe travels along, so `finetune predict` knows the task and the generation settings.
    recipe_file = recipe_file_of(run_dir)
    if recipe_file is not None:
        shutil.copyfile(recipe_file, output_dir / RECIPE_FILE)
    return output_dir
