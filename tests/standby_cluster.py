"""A throwaway PostgreSQL primary and streaming standby, for the replica tests.

Started in temporary folders on free ports with the server's own tools (``initdb``,
``pg_basebackup -R``, ``pg_ctl``) as the ``postgres`` system user, tuned to start fast (small
buffers, no fsync). The superuser has a password with ``@``, ``:``, ``/`` and ``%`` in it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

PG_BIN = Path(os.environ.get("TRADESTORE_PG_BIN", "/usr/lib/postgresql/15/bin"))
PASSWORD = "s3cr@t:pw/%42"
DATABASE = "tradestore"
_SETTINGS = [
    "listen_addresses=127.0.0.1",
    "shared_buffers=16MB",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_wal_senders=4",
    "hot_standby=on",
    "wal_receiver_status_interval=1s",
]


def unavailable() -> str | None:
    """Why a cluster cannot be started here, or ``None`` when it can."""
    missing = [tool for tool in ("initdb", "pg_ctl", "pg_basebackup") if not (PG_BIN / tool).exists()]
    if missing:
        return f"PostgreSQL server binaries {', '.join(missing)} not found in {PG_BIN} (set TRADESTORE_PG_BIN)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no `postgres` system user to run the test cluster as"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        return "the test cluster runs as the `postgres` system user: run the tests as root or as postgres"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "`runuser` not found (needed to run the test cluster as postgres)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    folder: Path
    port: int

    @property
    def url(self) -> URL:
        return URL.create("postgresql", "postgres", PASSWORD, "127.0.0.1", self.port, DATABASE)


class StandbyCluster:
    """A primary and one streaming standby (``start()`` / ``stop_standby()`` / ``start_standby()`` / ``close()``)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tradestore-replicas-"))
        self.primary = Server("primary", self.root / "primary", free_port())
        self.standby = Server("standby", self.root / "standby", free_port())

    def _run(self, *command: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        done = subprocess.run(
            [*prefix, *command], env=env, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            logs = "".join(p.read_text() for p in self.root.glob("*.log"))
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}\n{logs}")

    def _pg_ctl_start(self, server: Server) -> None:
        options = " ".join([f"-p {server.port}", f"-k {self.root}", *(f"-c {s}" for s in _SETTINGS)])
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(server.folder), "-l", str(self.root / f"{server.name}.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def start(self) -> None:
        """initdb, start the primary, create the database, base-backup the standby, start it."""
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.primary.folder), "-U", "postgres", f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions", "-E", "UTF8",
        )  # fmt: skip
        self._pg_ctl_start(self.primary)
        self._run(
            str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres", "-d", "postgres",
            "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {DATABASE}",
        )  # fmt: skip
        self._run(
            str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
            "-D", str(self.standby.folder), "-R", "-X", "stream", "-c", "fast", "--no-sync",
        )  # fmt: skip
        self.start_standby()

    def start_standby(self) -> None:
        self._pg_ctl_start(self.standby)

    def stop_standby(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.standby.folder), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        for server in (self.standby, self.primary):
            if (server.folder / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):  # already down
                    self._run(str(PG_BIN / "pg_ctl"), "-D", str(server.folder), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def wait_streaming(self, timeout_s: float = 30) -> None:
        """Until the primary reports the standby streaming."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                self._run(
                    str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                    "-d", "postgres", "-tAc",
                    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_stat_replication WHERE state = 'streaming') "
                    "THEN RAISE EXCEPTION 'not yet'; END IF; END $$",
                )  # fmt: skip
                return
            except RuntimeError:
                time.sleep(0.2)
        raise RuntimeError("the standby did not start streaming")
