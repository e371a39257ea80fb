"""`finetune chat RUN_DIR`: an interactive conversation with a chat run in the terminal. Replies stream token by
token; the history is kept until /reset; /exit (or Ctrl-D) ends it. Heavy imports stay inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finetune.cli.app import app, user_errors

HELP_LINE = "Type a message and press Enter. /reset starts a new conversation, /exit ends."


@app.command()
@user_errors
def chat(
    run_dir: Annotated[Path, typer.Argument(help="A run trained with --format chat (or a checkpoint in one).")],
    system: Annotated[str | None, typer.Option(
        help="System turn of the conversation. Default: the run's data.system_prompt.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Most new tokens per reply.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (samples when set).")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling mass (samples when set).")] = None,
) -> None:
    """Talk to a chat run: replies stream as they are generated; /reset starts over, /exit ends."""
    from finetune.tasks.chat_predict import ChatSession
    from finetune.tasks.predict import family_of_run

    family, recipe = family_of_run(run_dir)
    if not getattr(family.task_class, "supports_chat", False):
        from finetune.errors import UserError

        raise UserError(f"{run_dir} is a {family.name} run; finetune chat talks to runs trained with --format chat.")
    generation = {key: value for key, value in {"max_new_tokens": max_new_tokens, "temperature": temperature,
                                                "top_p": top_p}.items() if value is not None}
    if temperature is not None or top_p is not None:
        generation["do_sample"] = True
    session = ChatSession(run_dir, recipe, family, generation, system)
    from transformers import TextStreamer

    streamer = TextStreamer(session.tokenizer, skip_prompt=True, skip_special_tokens=True)
    typer.echo(f"Chatting with {run_dir}. {HELP_LINE}")
    while True:
        try:
            line = input("you> ")
        except EOFError:
            typer.echo("")
            break
        command = line.strip()
        if not command:
            continue
        if command in ("/exit", "/quit"):
            break
        if command == "/reset":
            session.reset()
            typer.echo("(new conversation)")
            continue
        typer.echo("assistant> ", nl=False)
        session.say(line, streamer)  # the streamer prints the reply and ends its line
