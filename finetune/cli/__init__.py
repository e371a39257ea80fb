"""The `finetune` command line: the Typer app and its commands. Commands parse flags, build a Recipe and call the
layer below; heavy libraries are imported inside command bodies, so `finetune --help` answers at once."""

# Each module registers its commands on the app; the training commands first, so `--help` lists them first.
from finetune.cli import training  # noqa: F401, I001
from finetune.cli import tools  # noqa: F401
from finetune.cli import sweep  # noqa: F401
from finetune.cli import chat  # noqa: F401
from finetune.cli.app import app


def main() -> None:
    app()
