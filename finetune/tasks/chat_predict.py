"""Talking to a chat run: `finetune predict RUN --message ...` (one reply per conversation) and `finetune chat RUN`
(an interactive conversation that keeps its history). Both render the conversation with the run's saved chat
template and its generation prompt, and stop at the template's end-of-turn token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.tasks.chat_format import Messages, conversation_problem
from finetune.tasks.chat_template import encode_prompt
from finetune.tasks.decoding import generate_continuations

if TYPE_CHECKING:
    from finetune.config.schema import Recipe
    from finetune.tasks.base import PredictRequest, TaskFamily


class ChatSession:
    """A trained run (full model or LoRA adapter) ready to answer conversations; `say` keeps a history."""

    def __init__(self, run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                 generation: dict[str, Any] | None = None, system: str | None = None) -> None:
        from transformers import AutoTokenizer

        from finetune.config.schema import GenerationSection
        from finetune.outputs.run_dir import tokenizer_folder

        base = recipe.generation.model_dump() if recipe else {}
        try:
            self.generation = GenerationSection(**{**base, **(generation or {})})
        except ValueError as error:
            raise UserError(f"Invalid generation setting: {error}") from error
        self.model = family.load_trained_model(run_dir)  # first: a folder without a model fails clearly
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(run_dir))
        if not self.tokenizer.chat_template:
            raise UserError(f"{run_dir} has no chat template (it was not trained with --format chat): use finetune "
                            f"predict --prompt to continue text instead.")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        config = self.model.config
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        self.max_length = recipe.data.max_length if recipe else (limit or 1024)
        self.system = system if system is not None else (recipe.data.system_prompt if recipe else None)
        self.history: Messages = []

    def with_system(self, messages: Messages) -> Messages:
        if self.system and not (messages and messages[0]["role"] == "system"):
            return [{"role": "system", "content": self.system}, *messages]
        return messages

    def replies(self, conversations: list[Messages], batch_size: int = 8, streamer: Any = None) -> list[str]:
        """The next assistant turn of each conversation (each must end with a user turn)."""
        prompts = []
        for number, given in enumerate(conversations, start=1):
            messages = self.with_system(given)
            problem = conversation_problem(messages, need_reply=False)
            if problem is None and messages[-1]["role"] != "user":
                problem = "it ends with an assistant turn; the last turn must be the user's"
            if problem is not None:
                raise UserError(f"Conversation {number}: {problem}.")
            prompts.append(encode_prompt(self.tokenizer, messages, self.max_length))
        return generate_continuations(self.model, self.tokenizer, prompts, self.generation, batch_size=batch_size,
                                      streamer=streamer)

    def say(self, text: str, streamer: Any = None) -> str:
        """Add a user turn, answer it (streamed to `streamer`), and keep both in the history."""
        self.history.append({"role": "user", "content": text})
        try:
            reply = self.replies([self.history], batch_size=1, streamer=streamer)[0]
        except BaseException:
            self.history.pop()
            raise
        self.history.append({"role": "assistant", "content": reply})
        return reply

    def reset(self) -> None:
        self.history = []


def predict_chat(run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                 request: PredictRequest) -> list[dict[str, Any]]:
    """One reply per conversation of the request; plain inputs (--prompt, --text, --file lines) are one user turn
    each. `stream` prints each reply token by token."""
    session = ChatSession(run_dir, recipe, family, request.generation, request.system)
    conversations = request.conversations or [[{"role": "user", "content": text}] for text, _ in request.inputs]
    if not request.stream:
        replies = session.replies(conversations, batch_size=request.batch_size)
        return [{"messages": session.with_system(messages), "output": reply}
                for messages, reply in zip(conversations, replies)]
    from transformers import TextStreamer

    streamer = TextStreamer(session.tokenizer, skip_prompt=True, skip_special_tokens=True)
    # One conversation at a time: a streamer follows a single sequence.
    return [{"messages": session.with_system(messages), "streamed": True,
             "output": session.replies([messages], batch_size=1, streamer=streamer)[0]}
            for messages in conversations]
