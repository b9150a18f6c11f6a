"""What every benchmark shares: results with their targets, the simulator in its own
process, `campaign-sync` as a child process, and a throwaway PostgreSQL database.

A benchmark measures; it never asserts. Each figure is printed with the reference it is
compared to (measured in the same run, so that the shared machine's noise cancels), the
ratio, the target and PASS or FAIL.
"""

from __future__ import annotations

import compileall
import functools
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

# Where a throwaway database is created: BENCH_ADMIN_DATABASE_URL, or the local server CI has.
ADMIN_URL = os.environ.get(
    "BENCH_ADMIN_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)
API_KEY, REST_KEY = "KEY", "SECRET"


@dataclass(frozen=True)
class Result:
    """One measured figure against its target.

    `ratio` is measured / reference. The target is met when the ratio is at most
    `max_ratio` (when given) and the measured value at most `max_value` (when given); a
    figure with neither is printed for information (verdict "-") and always passes.
    """

    target: str  # the target number, e.g. "1"
    name: str
    measured: float
    reference: float | None
    unit: str
    max_ratio: float | None = None
    max_value: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.reference is None or self.reference == 0:
            return None
        return self.measured / self.reference

    @property
    def passed(self) -> bool:
        ratio = self.ratio
        if self.max_ratio is not None and (ratio is None or ratio > self.max_ratio):
            return False
        return self.max_value is None or self.measured <= self.max_value

    def target_text(self) -> str:
        parts = []
        if self.max_ratio is not None:
            parts.append(f"ratio <= {self.max_ratio:g}")
        if self.max_value is not None:
            parts.append(f"<= {self.max_value:g} {self.unit}")
        return ", ".join(parts)


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def _verdict(result: Result) -> str:
    if result.max_ratio is None and result.max_value is None:
        return "-"
    return "PASS" if result.passed else "FAIL"


def print_results(results: Sequence[Result]) -> bool:
    """Print a table of results; True when every one passed."""
    header = ("#", "figure", "measured", "reference", "ratio", "target", "")
    rows = [
        (
            r.target,
            r.name,
            _number(r.measured, r.unit),
            _number(r.reference, r.unit),
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            r.target_text(),
            _verdict(r),
        )
        for r in results
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    for r in results:
        if r.note:
            print(f"  [{r.target}] {r.name}: {r.note}")
    return all(r.passed for r in results)


def load_average() -> str:
    """The 1-minute load average, printed beside every run (the machine is shared)."""
    return f"{os.getloadavg()[0]:.2f}"


def campaign_sync(*args: str) -> list[str]:
    """The command line running the installed `campaign-sync` in a child Python.

    `-P` (Python 3.11) keeps the current directory off `sys.path`: run from the checkout's
    root, a plain `-m campaign_sync` imported the source tree instead of the installed
    package, which lacks the migrations there, and the child failed to start. The
    package's bytecode is compiled first (`compile_package`)."""
    compile_package()
    return [sys.executable, "-P", "-m", "campaign_sync", *args]


@functools.cache
def compile_package() -> None:
    """Compile the installed package's modules to bytecode once, as `pip install .` (and so
    the Docker image) does at install time.

    An editable install (`pip install -e .`, as CI and development use) has no bytecode
    until an import writes it, and with PYTHONDONTWRITEBYTECODE=1 (set on the development
    machine) none ever is: every child then compiled our ~45 modules from source, which
    cost `sync` 0.31 G of its 2.98 G instructions (callgrind, one empty pass) that no
    installed copy pays, while the reference imports only compiled libraries."""
    spec = importlib.util.find_spec("campaign_sync")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(folder, quiet=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_simulator(*options: str) -> tuple[subprocess.Popen[bytes], str]:
    """`campaign-sync simulate` in its own process (API key KEY, REST key SECRET) and its
    URL, once it answers. Raises RuntimeError when it does not start within 10 minutes
    (generating 100,000 campaigns takes a while)."""
    port = free_port()
    process = subprocess.Popen(
        campaign_sync("simulate", "--port", str(port), "--api-key", API_KEY,
                      "--rest-api-key", REST_KEY, *options),
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while True:
        try:
            httpx.get(f"{url}/_sim/stats")
            return process, url
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.terminate()
                raise RuntimeError("the simulator did not start") from None
            time.sleep(0.2)


@contextmanager
def simulator(*options: str) -> Iterator[str]:
    """The simulator's URL while the block runs; the process is stopped after it."""
    process, url = start_simulator(*options)
    try:
        yield url
    finally:
        process.terminate()
        process.wait()


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A new, empty PostgreSQL database's URL; dropped after the block.

    The server is `BENCH_ADMIN_DATABASE_URL`'s (default: the local one at 127.0.0.1:5432)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    name = f"campaign_sync_bench_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except (ArgumentError, DBAPIError, ValueError) as error:
        problem = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise SystemExit(
            "benchmarks: cannot create a throwaway database with BENCH_ADMIN_DATABASE_URL "
            f"(a PostgreSQL URL whose user may create databases): {problem}"
        ) from None
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass(frozen=True)
class ChildRun:
    """A finished child process: wall and CPU seconds (user + system), peak RSS in MB,
    and `machine_cpu`: the CPU seconds every process of the machine spent while it ran
    (the simulator's and PostgreSQL's included; `/proc/stat`, Linux), so that
    `machine_cpu / (wall x os.cpu_count())` says how busy the cores were."""

    wall: float
    cpu: float
    peak_mb: float
    exit_code: int
    stdout: str
    machine_cpu: float = 0.0

    @property
    def machine_busy(self) -> float:
        """The share of the machine's cores busy while the child ran, 0..1."""
        return self.machine_cpu / (self.wall * (os.cpu_count() or 1)) if self.wall else 0.0


def machine_cpu_seconds() -> float:
    """CPU seconds spent so far by the whole machine, all cores (`/proc/stat`'s first
    line: user, nice, system, irq, softirq and steal; idle and iowait left out); 0.0
    where there is no `/proc/stat`."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# Forks the measured command from a fresh, small interpreter and reports its usage. On
# Linux a child's peak RSS counts the memory it had before exec, i.e. its parent's at
# fork: forked straight from a benchmark holding 100,000 documents, `sync` read 651 MB.
_MEASURE = """
import json, os, sys, time
started = time.perf_counter()
report_fd, command = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.close(report_fd)
    os.execvp(command[0], command)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)  # -9: killed by SIGKILL (an OOM kill, say)
report = [wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code]
os.write(report_fd, json.dumps(report).encode())
"""


def run_child(args: Sequence[str], env: dict[str, str] | None = None) -> ChildRun:
    """Run `args` to completion and read its own wall time, CPU (user + system) and peak
    RSS, as measured by a small interpreter that forks it (os.wait4, Linux).

    Raises RuntimeError when it exits non-zero."""
    read_end, write_end = os.pipe()
    with (
        os.fdopen(read_end) as reports,
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
    ):
        machine_before = machine_cpu_seconds()
        try:
            child = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _MEASURE, str(write_end), *args],
                env=env,
                stdout=out,
                stderr=err,
                text=True,
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)
        report = reports.read()
        machine = machine_cpu_seconds() - machine_before
        measurer = child.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if measurer != 0 or not report:
        raise RuntimeError(f"{' '.join(args)} could not be run: {stderr.strip()[-2000:]}")
    wall, cpu, peak_mb, code = json.loads(report)
    if code != 0:  # negative: the signal that killed it
        raise RuntimeError(f"{' '.join(args)} exited {code}: {stderr.strip()[-2000:]}")
    return ChildRun(wall, cpu, peak_mb, code, stdout, machine)


def sync_env(database_url: str, base_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `campaign-sync` child against the simulator."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "BATCH_API_BASE_URL": base_url,
        "BATCH_API_KEY": API_KEY,
        "BATCH_REST_API_KEY": REST_KEY,
        "CAMPAIGN_SYNC_LOG_LEVEL": "warning",
        **extra,
    }
