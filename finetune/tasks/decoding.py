"""Generating text with a recipe's `generation:` settings, for decoder-only models: samples before and after
training, evaluation completions (BLEU/ROUGE) and `finetune predict` all decode through `generate_continuations`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.tasks.chat_template import stop_token_ids

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from finetune.config.schema import GenerationSection, Recipe
    from finetune.tasks.base import PredictRequest, TaskFamily


def generation_kwargs(settings: GenerationSection, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """`model.generate` arguments from a recipe's generation section; sampling knobs only when sampling, so
    transformers does not warn about settings it ignores. Generation stops at end of sequence and, with a chat
    template, at its end-of-turn token."""
    kwargs: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "num_beams": settings.num_beams,
                              "do_sample": settings.do_sample, "pad_token_id": tokenizer.pad_token_id,
                              "eos_token_id": stop_token_ids(tokenizer)}
    if settings.num_beams > 1:
        kwargs["length_penalty"] = settings.length_penalty
    if settings.no_repeat_ngram_size:
        kwargs["no_repeat_ngram_size"] = settings.no_repeat_ngram_size
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    return kwargs


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, max_length: int) -> list[int]:
    """Prompt token ids as in training (special tokens such as Llama's BOS included), cut from the left."""
    ids = tokenizer(prompt)["input_ids"][-max_length:]
    # generate() needs at least one token: an empty prompt starts from BOS (GPT-2: its end-of-text token).
    return ids or [tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id]


def generate_continuations(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[list[int]],
                           settings: GenerationSection, batch_size: int = 8, streamer: Any = None) -> list[str]:
    """The text each prompt (token ids) continues with, without the prompt.

    Batches are left-padded, so all prompts end at the same position and new tokens line up, and sorted by length,
    so little padding is computed.
    """
    import torch

    kwargs = generation_kwargs(settings, tokenizer)
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda index: len(prompts[index]), reverse=True)
    outputs = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            indices = order[start:start + batch_size]
            batch = [prompts[index] for index in indices]
            width = max(len(ids) for ids in batch)
            input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(ids)) + list(ids) for ids in batch],
                                     device=device)
            attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
            with torch.inference_mode():
                generated = model.generate(  # type: ignore[operator]
                    input_ids=input_ids, attention_mask=attention_mask, streamer=streamer, **kwargs)
            for index, row in zip(indices, generated[:, width:]):
                outputs[index] = str(tokenizer.decode(row, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return outputs


def predict_texts(run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                  request: PredictRequest) -> list[dict[str, Any]]:
    """Continuations of the request's prompts from a trained run (full model or LoRA adapter), with the run's
    generation settings overridden by the request's; `stream` prints each continuation token by token."""
    from transformers import AutoTokenizer

    from finetune.config.schema import GenerationSection
    from finetune.errors import UserError
    from finetune.outputs.run_dir import tokenizer_folder

    base = recipe.generation.model_dump() if recipe else {}
    try:
        generation = GenerationSection(**{**base, **request.generation})
    except ValueError as error:
        raise UserError(f"Invalid generation setting: {error}") from error
    model = family.load_trained_model(run_dir)  # first: a folder without a model fails with a clear message
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(run_dir))
    if tokenizer.pad_token is None:  # the same stand-in as in training (models.loading.load_tokenizer)
        tokenizer.pad_token = tokenizer.eos_token
    # Prompts are cut to the longest input the run trained on; a plain model folder: its own limit.
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    max_length = max(recipe.data.max_length, recipe.data.block_size or 0) if recipe else (limit or 1024)
    prompts = [text for text, _ in request.inputs]
    prompt_ids = [encode_prompt(tokenizer, prompt, max_length) for prompt in prompts]
    if not request.stream:
        outputs = generate_continuations(model, tokenizer, prompt_ids, generation, batch_size=request.batch_size)
        return [{"input": prompt, "output": output} for prompt, output in zip(prompts, outputs)]
    from transformers import TextStreamer

    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    # One prompt at a time: a streamer follows a single sequence.
    return [{"input": prompt, "output": generate_continuations(model, tokenizer, [ids], generation, batch_size=1,
                                                               streamer=streamer)[0], "streamed": True}
            for prompt, ids in zip(prompts, prompt_ids)]
