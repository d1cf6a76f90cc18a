"""Measuring on a shared machine: interleaved repeats, medians, paired ratios, peak RSS.

Absolute times drift when another job shares the cores, so every comparison here runs its
candidates in turn within each repeat (A, B, C, then B, C, A, ...) and reports medians, and
ratios are taken between the members of one repeat before the median is taken.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

#: A workload runs once and returns how many items (images) it processed.
Workload = Callable[[], int]


@dataclass(frozen=True)
class Rates:
    """Items per second of one workload, one value per repeat (in repeat order)."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        return (max(self.values) - min(self.values)) / self.median if self.median else 0.0


def interleave(workloads: dict[str, Workload], repeats: int, warmup: int = 1) -> dict[str, Rates]:
    """Run every workload ``repeats`` times, rotating the order each repeat; items/s each time.

    ``warmup`` untimed rounds come first (page cache, XNNPACK weight packing, lazy imports).
    """
    names = list(workloads)
    for _ in range(warmup):
        for name in names:
            workloads[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()  # a collection triggered inside a timed run would land on one candidate
            start = time.perf_counter()
            items = workloads[name]()
            samples[name].append(items / (time.perf_counter() - start))
    return {name: Rates(tuple(v)) for name, v in samples.items()}


def paired_ratio(a: Rates, b: Rates) -> float:
    """Median over repeats of a/b, each pair measured back to back."""
    return statistics.median(x / y for x, y in zip(a.values, b.values, strict=True))


@dataclass(frozen=True)
class ProcessRun:
    """One child process: wall seconds, its own peak RSS (KiB), exit code and stderr."""

    seconds: float
    peak_rss_kib: int
    returncode: int
    stderr: str


# Linux keeps a process's peak RSS across exec, so a child started straight from this (large)
# process reports at least this process's RSS as its own peak. The launcher is a small
# ``python -S`` that forks the command itself, so the baseline a child inherits is ~8 MiB.
_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_process(args: Sequence[str], env: dict[str, str] | None = None) -> ProcessRun:
    """Run a command through the launcher: its wall time, own peak RSS, exit code, stderr."""
    result = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    try:
        seconds, rss, code = result.stdout.split()
    except ValueError as exc:  # the launcher itself failed
        raise RuntimeError(f"cannot run {args[0]}: {result.stderr[-500:]}") from exc
    return ProcessRun(float(seconds), int(rss), int(code), result.stderr)


def interleave_processes(
    commands: dict[str, Sequence[str]], repeats: int, warmup: int = 1
) -> dict[str, list[ProcessRun]]:
    """Like :func:`interleave`, for whole commands; raises RuntimeError when one fails."""
    names = list(commands)
    runs: dict[str, list[ProcessRun]] = {name: [] for name in names}
    for r in range(-warmup, repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            result = run_process(commands[name])
            if result.returncode not in (0, 1):  # 1: some files failed; rows still written
                tail = result.stderr.strip()[-500:]
                raise RuntimeError(f"{name} exited {result.returncode}: {tail}")
            if r >= 0:
                runs[name].append(result)
    return runs


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def busiest_other_processes(limit: int = 3) -> list[str]:
    """Other processes using CPU right now (``ps``), to say what else was running."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu", "--no-headers"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.splitlines():
        pid, pcpu, comm = line.split(None, 2)
        if int(pid) != os.getpid() and float(pcpu) >= 5.0:
            rows.append(f"{comm} ({pcpu}% CPU)")
    return rows[:limit]


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_description() -> dict[str, str]:
    """What the numbers were measured on, for the top of RESULTS.md."""
    return {
        "date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU": cpu_model(),
        "cores": f"{usable_cores()} usable ({os.cpu_count()} online)",
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
        "Python": sys.version.split()[0],
        "runtime": f"ai-edge-litert {version('ai-edge-litert')}, "
        f"tflite-runtime {version('tflite-runtime')}",
        "libraries": f"numpy {version('numpy')}, Pillow {version('pillow')}, "
        f"tensorflow-cpu {version('tensorflow-cpu')} (section 2 and conversions only)",
        "load average at start": load_average(),
    }
