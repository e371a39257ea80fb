"""Decoding for encoder-decoder models, shared by training, `finetune evaluate` and `finetune predict`: T5's task
prefixes, the recipe's generation settings in a model's generation_config, and prediction from a trained run.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import GenerationConfig

    from finetune.config.schema import Recipe
    from finetune.tasks.base import PredictRequest, TaskFamily

logger = logging.getLogger("finetune")

# Models trained with a task prefix ("summarize: ", "translate English to German: "); others get none by default.
T5_MODEL_TYPES = frozenset({"t5", "mt5", "umt5", "longt5", "switch_transformers", "t5gemma"})

# Language names for T5's "translate English to German: " prefix.
LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
    "et": "Estonian", "fi": "Finnish", "fr": "French", "gu": "Gujarati", "hi": "Hindi", "it": "Italian",
    "ja": "Japanese", "kk": "Kazakh", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "nl": "Dutch",
    "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sv": "Swedish", "tr": "Turkish",
    "uk": "Ukrainian", "zh": "Chinese",
}

def default_source_prefix(task: str, model_type: str, source_lang: str | None, target_lang: str | None) -> str:
    """T5's pretraining prefixes; other models (BART, Marian, Pegasus) were trained without one."""
    if model_type not in T5_MODEL_TYPES:
        return ""
    if task == "summarization":
        return "summarize: "
    if source_lang and target_lang:
        return f"translate {language_name(source_lang)} to {language_name(target_lang)}: "
    logger.warning("No --source-lang/--target-lang: T5 gets no 'translate X to Y: ' prefix. "
                   "Pass --source-prefix to set one.")
    return ""


def language_name(code: str) -> str:
    """'de' -> 'German'; mBART-style codes ('de_DE') use their language part; unknown codes stay as given."""
    return LANGUAGE_NAMES.get(re.split(r"[_-]", code)[0].lower(), code)


def configure_generation(config: GenerationConfig, settings: dict[str, Any]) -> GenerationConfig:
    """Put the recipe's generation settings into a model's generation_config (used by evaluate and predict).

    Settings the chosen decoding mode ignores are reset to their neutral values: transformers refuses to save a
    generation_config with, say, a length_penalty but one beam, and a pretrained config may bring such values.
    """
    num_beams = int(settings.get("num_beams", 1))
    sampling = bool(settings.get("do_sample", False))
    # max_new_tokens, as users and pipelines read it; no max_length, so the two never disagree (a pretrained
    # config may bring one). compat.generation_config_kept stops the Seq2SeqTrainer from filling it in again.
    config.max_new_tokens = int(settings.get("max_new_tokens", 64))
    config.max_length = None
    config.num_beams = num_beams
    config.do_sample = sampling
    config.no_repeat_ngram_size = int(settings.get("no_repeat_ngram_size", 0))
    config.length_penalty = float(settings.get("length_penalty", 1.0)) if num_beams > 1 else 1.0
    if num_beams == 1:
        config.early_stopping = False
    config.temperature = float(settings.get("temperature", 1.0)) if sampling else 1.0
    config.top_p = float(settings.get("top_p", 1.0)) if sampling else 1.0
    config.top_k = int(settings.get("top_k", 50)) if sampling else 50
    return config



def clean_ids(ids: Any, pad_token_id: int) -> Any:
    """Token ids with the -100 the Trainer pads with (between batches, and in labels) turned into padding."""
    import numpy as np

    ids = ids[0] if isinstance(ids, tuple) else ids
    return np.where(ids < 0, pad_token_id, ids)


def generated_length(generated: Any, pad_token_id: int) -> float:
    """Mean tokens generated per example, end-of-sequence included; not the decoder start token, not padding."""
    import numpy as np

    if len(generated) == 0:
        return 0.0
    return float(np.count_nonzero(generated[:, 1:] != pad_token_id, axis=1).mean())


def own_prefix(config: Any, task: str) -> str | None:
    """The source prefix a model folder's config records (task_specific_params, where T5 keeps its own): the one
    for `task`, else the only one there is."""
    params = getattr(config, "task_specific_params", None) or {}
    prefixes = {name: entry["prefix"] for name, entry in params.items()
                if isinstance(entry, dict) and "prefix" in entry}
    if task in prefixes:
        return prefixes[task]
    return next(iter(prefixes.values())) if len(prefixes) == 1 else None


def predict_texts(run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                  request: PredictRequest) -> list[dict[str, Any]]:
    """Generate for each input with a trained run (or a checkpoint-N inside one), as evaluation did: the run's
    recipe supplies the source prefix, max_length and generation settings; the request overrides the latter. With
    `stream`, each output is printed as soon as its batch is done."""
    import torch
    from transformers import AutoTokenizer

    from finetune.config.schema import GenerationSection
    from finetune.config.schema import Recipe as RecipeSchema
    from finetune.outputs.run_dir import tokenizer_folder

    model = family.load_trained_model(run_dir)  # full weights or base + LoRA adapter
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(run_dir))
    if recipe is None:  # a bare model folder: its own prefix and generation settings, from its configs
        recipe = RecipeSchema(task=family.name, data={"source_prefix": own_prefix(model.config, family.name)})
        settings = {name: value for name in GenerationSection.model_fields
                    if (value := getattr(model.generation_config, name, None)) is not None}
    else:
        settings = recipe.generation.model_dump()
    configure_generation(model.generation_config, {**settings, **request.generation})
    prefix, max_length = recipe.data.source_prefix or "", recipe.data.max_length
    texts = [text for text, _ in request.inputs]
    records: list[dict[str, Any]] = []
    for start in range(0, len(texts), request.batch_size):
        batch = texts[start:start + request.batch_size]
        encoded = tokenizer([prefix + text for text in batch], max_length=max_length, truncation=True,
                            padding=True, return_tensors="pt")
        with torch.inference_mode():
            generated = model.generate(**encoded)
        decoded = [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
        for text, output in zip(batch, decoded):
            if request.stream:
                print(output, flush=True)
            records.append({"input": text, "output": output})
    return records
