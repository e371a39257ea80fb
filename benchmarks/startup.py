"""Startup: how long the command line takes to answer `--help`, against the ecosystem's own command-line tools.

    python benchmarks/startup.py            # 7 runs of each command, median
    python benchmarks/startup.py --quick    # 3 runs of each

finetune imports torch, transformers and datasets only inside the commands that need them (tests/test_startup.py
fails if importing the CLI imports them), so `--help` costs Python, Typer and finetune's own modules. `accelerate`
and `transformers` import torch before they parse their arguments. Every run is a fresh process (the file cache is
warm: one untimed run of each command goes first).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LoadTracker, append_results, markdown_table, measure, median

BIN = Path(sys.executable).parent


def command(name: str, *args: str) -> list[str] | None:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    return [str(path), *args] if path else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per command")
    parser.add_argument("--runs", type=int, help="runs per command [7; quick: 3]")
    options = parser.parse_args()
    runs = options.runs or (3 if options.quick else 7)
    commands = {
        "finetune --help": command("finetune", "--help"),
        "finetune classify --help": command("finetune", "classify", "--help"),
        "accelerate --help": command("accelerate", "--help"),
        "transformers --help": command("transformers", "--help"),
        'python -c "import torch" (for scale)': [sys.executable, "-c", "import torch"],
        'python -c "pass" (the interpreter alone)': [sys.executable, "-c", "pass"],
    }
    commands = {name: argv for name, argv in commands.items() if argv}
    for argv in commands.values():  # warm the file cache; not timed
        measure(argv).check(" ".join(argv))
    load = LoadTracker()
    times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, float] = dict.fromkeys(commands, 0.0)
    for _ in range(runs):
        load.sample()
        for name, argv in commands.items():  # interleaved, so a busy spell spreads over all commands
            measured = measure(argv).check(name)
            times[name].append(measured.seconds)
            peaks[name] = max(peaks[name], measured.peak_mb)
    ours = median(times["finetune --help"])
    rows = [[f"`{name}`", f"{median(times[name]):.3f}", f"{min(times[name]):.3f}",
             f"{median(times[name]) / ours:.1f}x", f"{peaks[name]:.0f}"] for name in commands]
    table = markdown_table(["command", "median s", "fastest s", "vs finetune --help", "peak MB"], rows)
    notes = [f"{runs} runs per command, interleaved, each a fresh process; wall time from process start to exit",
             f"goal: `finetune --help` under 0.3 s: {ours:.3f} s ({'met' if ours < 0.3 else 'missed'})",
             load.note()]
    append_results("Startup: --help", table, notes)


if __name__ == "__main__":
    main()
