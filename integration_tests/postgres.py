"""A throwaway PostgreSQL server for tests: `initdb` and `pg_ctl` into a temporary folder, on a free
loopback port, with a password for TCP clients. Needs the server binaries (Debian's `postgresql`
package: /usr/lib/postgresql/<version>/bin, or on PATH). `initdb` refuses to run as root, so as root
the server runs as the `postgres` OS user, on a folder that user owns.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import Iterator, List, Optional

SUPERUSER = "postgres"
PASSWORD = "source-usage-test"
START_ATTEMPTS = 3  # a free port can be taken between choosing it and the server binding it
START_TIMEOUT_SECONDS = 60


class PostgresUnavailable(Exception):
    """This machine cannot run a PostgreSQL server (no binaries, or no user to run them as)."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    username: str
    password: str
    database: str


def server_binaries() -> Path:
    """The folder holding initdb and pg_ctl: on PATH, else the newest /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and (Path(on_path).resolve().parent / "initdb").exists():
        return Path(on_path).resolve().parent
    versions = [Path(folder) for folder in glob("/usr/lib/postgresql/*/bin") if Path(folder, "pg_ctl").exists()]
    if not versions:
        raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    return max(versions, key=lambda folder: [int(part) for part in re.findall(r"\d+", folder.parent.name)] or [0])


def _run_as_prefix(folder: Path) -> List[str]:
    """As root, commands run as the `postgres` user, who then owns `folder`; otherwise as ourselves."""
    if os.geteuid() != 0:
        return []
    try:
        account = pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PostgresUnavailable("running as root needs a 'postgres' OS user to run the server as") from None
    if not shutil.which("runuser"):
        raise PostgresUnavailable("running as root needs `runuser` to start the server as 'postgres'")
    os.chown(folder, account.pw_uid, account.pw_gid)
    return ["runuser", "-u", SUPERUSER, "--"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(command: List[str]) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS + 30)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr[-2000:] or completed.stdout[-2000:]}")


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running server for the duration of the `with` block; stopped and deleted afterwards."""
    binaries = server_binaries()
    folder = Path(tempfile.mkdtemp(prefix="source-usage-postgres-"))
    data = folder / "data"
    started: Optional[List[str]] = None
    try:
        run_as = _run_as_prefix(folder)
        password_file = folder / "password"
        password_file.write_text(PASSWORD + "\n")
        os.chmod(password_file, 0o644)
        _run([*run_as, str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "--pwfile", str(password_file),
              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])
        for attempt in range(START_ATTEMPTS):
            port = _free_port()
            # UTC whatever the machine's zone (initdb copies it): PyAirbyte's instants depend on it (test_pyairbyte.py)
            options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c timezone=UTC"
            command = [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
                       "-w", "-t", str(START_TIMEOUT_SECONDS), "-o", options, "start"]
            try:
                _run(command)
            except RuntimeError:
                if attempt == START_ATTEMPTS - 1:
                    raise RuntimeError(f"PostgreSQL did not start: {_tail(folder / 'server.log')}") from None
                continue
            started = [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            break
        yield PostgresServer(host="127.0.0.1", port=port, username=SUPERUSER, password=PASSWORD, database="postgres")
    finally:
        if started:
            subprocess.run(started, capture_output=True, timeout=START_TIMEOUT_SECONDS)
        shutil.rmtree(folder, ignore_errors=True)


def _tail(log: Path) -> str:
    try:
        return log.read_text()[-2000:]
    except OSError:
        return "(no server log)"
