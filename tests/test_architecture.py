"""The package keeps the shape a newcomer can read: layered subpackages without import cycles, small modules, task
knowledge in finetune/tasks/, and command-line flags that stay what users type."""

from __future__ import annotations

import json
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "finetune"
MAX_MODULE_LINES = 400


def _import_graph() -> dict[str, set[str]]:
    import grimp  # import-linter's graph builder (the dev extra)
    graph = grimp.build_graph("finetune")
    return {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in edges.get(module, ()):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return cycles


def test_the_tarjan_check_finds_a_cycle_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(_import_graph()) == []


def test_the_package_is_layered_into_subpackages_of_small_modules():
    subpackages = [path.parent.name for path in PACKAGE.glob("*/__init__.py")]
    assert len(subpackages) >= 5, subpackages
    long_modules = {str(path.relative_to(PACKAGE)): length for path in PACKAGE.rglob("*.py")
                    if (length := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long_modules == {}


def test_task_names_are_spelled_out_only_inside_finetune_tasks():
    """Everything that differs by task lives in finetune/tasks/; elsewhere code asks the registry."""
    from finetune.tasks import families

    names = "|".join(re.escape(family.name) for family in families())
    literal = re.compile(rf"""["']({names})["']""")
    files = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                   if path.parent.name != "tasks" and literal.search(path.read_text(encoding="utf-8")))
    assert len(files) <= 3, files


def test_every_flag_users_typed_before_the_restructure_still_exists():
    """tests/data/cli_flags_before_restructure.json holds each command's flags and arguments as they were when the
    commands were written by hand; the generated commands must keep every one."""
    import typer.main

    from finetune.cli import app

    def walk(command, prefix: list[str], found: dict) -> dict:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*prefix, name], found)
        else:
            found[" ".join(prefix)] = {
                "options": sorted(name for param in command.params if param.param_type_name == "option"
                                  for name in (*param.opts, *param.secondary_opts)),
                "arguments": [param.name for param in command.params if param.param_type_name == "argument"]}
        return found

    now = walk(typer.main.get_command(app), [], {})
    before = json.loads((Path(__file__).parent / "data" / "cli_flags_before_restructure.json").read_text())
    for command, flags in before.items():
        assert command in now, f"command {command!r} is gone"
        assert set(flags["options"]) <= set(now[command]["options"]), (command, set(flags["options"]) - set(
            now[command]["options"]))
        assert flags["arguments"] == now[command]["arguments"], command


def test_flag_help_comes_from_the_schema():
    from finetune.config.flags import flag_spec
    from finetune.config.schema import TrainSection

    epochs = flag_spec("train.epochs")  # chosen by training-set size: the description says the default
    assert epochs.name == "--epochs" and epochs.value_type is float and epochs.default is None
    assert epochs.help.startswith(TrainSection.model_fields["epochs"].description) and "Default: 3" in epochs.help
    assert flag_spec("train.gradient_accumulation_steps").default == "1"
    columns = flag_spec("data.text_columns", "--text-column")
    assert columns.repeatable and columns.value_type is str
    assert flag_spec("peft.enabled", "--lora").value_type is bool
    assert "(no, fp16, bf16, auto)" in flag_spec("train.mixed_precision").help


def test_the_readme_recipe_reference_is_the_schema():
    from finetune.config.reference import with_reference

    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    assert with_reference(readme) == readme, ("README.md's recipe reference differs from the schema: run "
                                              "`python -m finetune.config.reference README.md`")
