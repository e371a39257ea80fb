"""Chat templates and assistant-only labels: a conversation rendered by the tokenizer's chat template, with the loss
on every assistant turn (its end-of-turn token included) and nowhere else.

Which template: data.chat_template (a Jinja file) if given, else the model's own (`tokenizer.chat_template`), else
DEFAULT_CHAT_TEMPLATE, a ChatML template (as Qwen and SmolLM use). The template in use is set on the tokenizer, so the
run's saved tokenizer (chat_template.jinja) renders conversations exactly as they were trained on: `finetune
predict`, `transformers.pipeline("text-generation")` with a messages list and later fine-tunes. The default's
`<|im_start|>`/`<|im_end|>` are added to a tokenizer that lacks them, as special tokens (the model's embeddings grow
to match, in tasks/chat_task.py).

Assistant tokens come from the template's own output, never from guessing string positions: templates with
`{% generation %}` blocks (the default has them) give transformers' `return_assistant_tokens_mask`; for the others
each assistant turn is the text between the conversation rendered up to it with the generation prompt and the
conversation rendered through it (both must be prefixes of the whole rendering, else the template is refused).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.tasks.lm_inputs import IGNORE_INDEX

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from finetune.tasks.chat_format import Messages

DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
DEFAULT_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>")
# Tokens that end an assistant turn in common templates (ChatML, Llama 3, Gemma, Phi-3): generation stops at the
# ones the template in use writes, besides the end-of-sequence token.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")
_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


def has_generation_tags(template: str) -> bool:
    return bool(_GENERATION_TAG.search(template))


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, template_file: str | None) -> str:
    """Set the run's chat template on the tokenizer (idempotent) and say where it came from."""
    if template_file:
        path = Path(template_file).expanduser()
        if not path.is_file():
            raise UserError(f"Chat template file not found: {template_file}. Pass a Jinja file to --chat-template.")
        tokenizer.chat_template = path.read_text(encoding="utf-8")
        origin = f"file {template_file}"
    elif not tokenizer.chat_template:
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    if tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE:
        vocabulary = tokenizer.get_vocab()
        missing = [token for token in DEFAULT_SPECIAL_TOKENS if token not in vocabulary]
        if missing:
            tokenizer.add_special_tokens({"extra_special_tokens": missing},
                                         replace_extra_special_tokens=False)
        origin = "default ChatML (finetune's; saved with the run)"
    elif not template_file:
        origin = "the model's own"
    return origin


def template_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    """A short hash of the template in use (part of the tokenization cache key)."""
    return hashlib.sha256(str(tokenizer.chat_template or "").encode("utf-8")).hexdigest()[:16]


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids generation stops at: end of sequence, and the end-of-turn token the chat template writes."""
    ids = [] if tokenizer.eos_token_id is None else [int(tokenizer.eos_token_id)]
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    if template:
        vocabulary = tokenizer.get_vocab()
        ids += [vocabulary[token] for token in END_OF_TURN_TOKENS if token in vocabulary and token in template]
    return list(dict.fromkeys(ids))


def save_stop_tokens(folder: Path) -> None:
    """Write the chat template's end-of-turn token into a saved model's generation_config.json (a LoRA run's merged
    export: the base model's config knows only its end-of-sequence token), so pipelines stop at the end of a turn."""
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template or not (folder / "generation_config.json").is_file():
        return
    stops = stop_token_ids(tokenizer)
    config = GenerationConfig.from_pretrained(folder)
    known = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    wanted = list(dict.fromkeys([token for token in known if token is not None] + stops))
    if wanted != known:
        config.eos_token_id = wanted if len(wanted) > 1 else wanted[0]
        config.save_pretrained(folder)


def render(tokenizer: PreTrainedTokenizerBase, messages: Messages, add_generation_prompt: bool = False) -> str:
    try:
        return str(tokenizer.apply_chat_template(messages, tokenize=False,
                                                 add_generation_prompt=add_generation_prompt))
    except Exception as error:  # jinja2's TemplateError: a template that raises on this conversation
        if type(error).__module__.startswith("jinja2"):
            raise UserError(f"The chat template cannot render a conversation ({error}). Check the data's roles, "
                            f"or pass another template with --chat-template.") from error
        raise


def encode_conversation(tokenizer: PreTrainedTokenizerBase, messages: Messages) -> tuple[list[int], list[int]]:
    """(token ids, 1 on assistant tokens else 0) of a whole conversation as the chat template renders it."""
    template = str(tokenizer.chat_template or "")
    if has_generation_tags(template):
        encoded: Any = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                     return_assistant_tokens_mask=True,
                                                     tokenizer_kwargs={"verbose": False})  # truncated below
        return list(encoded["input_ids"]), list(encoded["assistant_masks"])
    text = render(tokenizer, messages)
    spans = []
    for index, turn in enumerate(messages):
        if turn["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:index], add_generation_prompt=True)
        through = render(tokenizer, messages[:index + 1])
        if not (text.startswith(before) and text.startswith(through) and len(before) <= len(through)):
            raise UserError("The chat template renders earlier turns differently once later turns follow, so the "
                            "assistant turns cannot be found from its output. Pass a template with {% generation %} "
                            "blocks around assistant replies (--chat-template FILE).")
        spans.append((len(before), len(through)))
    try:
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    except NotImplementedError as error:  # slow (Python) tokenizers have no offsets
        raise UserError("Chat training needs a fast tokenizer (with offsets); this model has only a slow one.") \
            from error
    mask = [int(any(start < span_end and end > span_start for span_start, span_end in spans))
            for start, end in encoding["offset_mapping"]]
    return list(encoding["input_ids"]), mask


def encode_example(tokenizer: PreTrainedTokenizerBase, messages: Messages, max_length: int,
                   keep: bool = False) -> tuple[list[int], list[int], int] | None:
    """(input ids, labels: -100 except on assistant tokens, turns dropped) of one conversation in at most
    `max_length` tokens; None when even its last exchange does not fit (the row is dropped), or with `keep`
    (evaluation rows, which must all be scored) that exchange cut from the left (turns dropped: -1 if none).

    Too long: trailing user turns go first (nothing is learned from them), then whole exchanges from the start
    (the system turn stays), until it fits; the last assistant turn is always kept whole.
    """
    ids, mask = encode_conversation(tokenizer, messages)
    dropped = 0
    if len(ids) > max_length:
        system = messages[:1] if messages[0]["role"] == "system" else []
        rest = list(messages[len(system):])
        while rest and rest[-1]["role"] != "assistant":
            rest.pop()
        starts = [index for index, turn in enumerate(rest) if turn["role"] == "user"]
        for start in starts:
            ids, mask = encode_conversation(tokenizer, system + rest[start:])
            if len(ids) <= max_length:
                dropped = len(messages) - len(system) - len(rest[start:])
                break
        else:
            if not keep:
                return None
            dropped = len(messages) - len(system) - len(rest[starts[-1]:]) or -1
            ids, mask = ids[-max_length:], mask[-max_length:]
    if not any(mask):
        raise UserError("The chat template marks no assistant tokens in a conversation that has assistant turns: "
                        "it cannot be trained on. Pass another template with --chat-template.")
    return ids, [token if flag else IGNORE_INDEX for token, flag in zip(ids, mask)], dropped


def encode_prompt(tokenizer: PreTrainedTokenizerBase, messages: Messages, max_length: int) -> list[int]:
    """Token ids that ask for the next assistant turn (the template's generation prompt); too long: whole earliest
    exchanges go first (the system turn stays), then the start of what is left."""
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    rest = list(messages[len(system):])
    starts = [index for index, turn in enumerate(rest) if turn["role"] == "user"] or [0]
    ids: list[int] = []
    for start in starts:
        ids = tokenizer(render(tokenizer, system + rest[start:], add_generation_prompt=True),
                        add_special_tokens=False, verbose=False)["input_ids"]
        if len(ids) <= max_length:
            return ids
    return ids[-max_length:]
