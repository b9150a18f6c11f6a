"""A real PgBouncer in front of the suite's PostgreSQL, in the pooling mode a test asks for.

`.ci/run` installs PgBouncer from the distribution's packages when it is missing. PgBouncer
refuses to run as root: as root it is started with `-u nobody`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.pg import free_port

HOW_TO_GET_ONE = "pgbouncer is not installed: apt-get install pgbouncer (as root)"


def _installed() -> str:
    """PgBouncer's binary; as root on a Debian-like machine, installed when missing."""
    found = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(found).exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["update", "-qq"], ["install", "-y", "-qq", "pgbouncer"]):
            subprocess.run(["apt-get", *step], env=env, capture_output=True, timeout=300)
    if not Path(found).exists():
        raise RuntimeError(HOW_TO_GET_ONE)
    return found


class PgBouncer:
    def __init__(self, admin_url: str, pool_mode: str) -> None:
        binary = _installed()
        target = psycopg.conninfo.conninfo_to_dict(admin_url)
        self.user = str(target.get("user") or "root")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"pgbouncer-{pool_mode}-"))
        (self.dir / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={target.get('host', '127.0.0.1')} port={target.get('port', 5432)}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"auth_type = trust\nauth_file = {self.dir}/users.txt\n"
            f"pool_mode = {pool_mode}\nunix_socket_dir =\n"
            f"logfile = {self.dir}/pgbouncer.log\npidfile = {self.dir}/pgbouncer.pid\n"
            "default_pool_size = 20\nmax_client_conn = 200\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        command = [binary, "-d", str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            shutil.chown(self.dir, "nobody")
            for path in self.dir.iterdir():
                shutil.chown(path, "nobody")
            command[1:1] = ["-u", "nobody"]
        subprocess.run(command, check=True, capture_output=True, timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                    conn.execute("select 1")
                return
            except psycopg.Error:
                time.sleep(0.1)
        raise RuntimeError(f"pgbouncer did not start: {self.log()[-500:]}")

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        pid_file = self.dir / "pgbouncer.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)
