"""The wheel a user installs: built from this checkout, installed alone into a fresh folder, it holds every
subpackage, py.typed and the shipped recipes, and `finetune recipes list/show` and `--benchmark glue` find them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel, built without network (the installed setuptools) and installed with --target, no dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(work / "dist"),
                    str(REPO)], check=True, capture_output=True, text=True)
    wheel = next((work / "dist").glob("finetune-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "finetune/py.typed" in names and "finetune/recipes/glue/sst2.yaml" in names, names
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, text=True)
    return target


def run_installed(target: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """python with the installed folder first on the path, run elsewhere than the checkout."""
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}
    env.pop("FINETUNE_RECIPES_DIR", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_the_installed_wheel_is_the_one_imported_and_imports_whole(installed, tmp_path):
    modules = sorted({".".join(path.relative_to(installed).with_suffix("").parts).removesuffix(".__init__")
                      for path in (installed / "finetune").rglob("*.py")})
    code = ("import importlib, finetune; "
            f"[importlib.import_module(m) for m in {modules!r}]; print(finetune.__file__, finetune.__version__)")
    result = run_installed(installed, "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(installed)), result.stdout
    from finetune import __version__

    assert result.stdout.split()[-1] == __version__


def test_the_installed_wheel_lists_and_shows_the_shipped_recipes(installed, tmp_path):
    listed = run_installed(installed, "-m", "finetune", "recipes", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    shipped = {path.relative_to(REPO / "recipes").with_suffix("").as_posix()
               for path in (REPO / "recipes").rglob("*.yaml") if path.parent.name != "benchmarks"}
    assert {line.split()[0] for line in listed.stdout.splitlines()} == shipped

    shown = run_installed(installed, "-m", "finetune", "recipes", "show", "glue/sst2", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (REPO / "recipes" / "glue" / "sst2.yaml").read_text(encoding="utf-8")

    code = "from finetune.eval.suites import resolve_benchmark; print(len(resolve_benchmark('glue').tasks))"
    suite = run_installed(installed, "-c", code, cwd=tmp_path)
    assert suite.returncode == 0 and suite.stdout.strip() == "9", suite.stderr
