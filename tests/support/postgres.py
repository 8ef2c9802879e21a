"""A throwaway PostgreSQL cluster from the system binaries, which a test may restart.

The session's fallback server (``tests/conftest.py``, when 127.0.0.1:5432 does not
answer) and the PostgreSQL restart fault test both use it. As root the binaries run
as the ``postgres`` system user (``pg_ctl`` refuses root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

HOST = "127.0.0.1"


def newest_pg_ctl() -> str | None:
    """The pg_ctl of the newest PostgreSQL installed from system packages."""

    def version(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/", path)
        return int(match.group(1)) if match else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=version)
    return found[-1] if found else shutil.which("pg_ctl")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class PgCluster:
    """``initdb`` in a new folder under the system temp dir (the ``postgres`` user must
    reach it: pytest's own temp dirs are private to root), then ``start``,
    ``restart`` and ``stop`` with pg_ctl; ``destroy`` stops it and removes the folder."""

    def __init__(self) -> None:
        pg_ctl = newest_pg_ctl()
        if pg_ctl is None:
            raise RuntimeError("no pg_ctl is installed (apt-get install postgresql)")
        self._pg_ctl = pg_ctl
        self._root = root = Path(tempfile.mkdtemp(prefix="ragserve-pg-"))
        self.datadir = root / "data"
        self.port = _free_port()
        self.user = "postgres"
        if os.geteuid() == 0:
            shutil.chown(root, user="postgres")
        initdb = str(Path(pg_ctl).parent / "initdb")
        self._run(initdb, "-D", str(self.datadir), "-U", self.user, "--auth=trust")

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    def _ctl(self, *args: str) -> None:
        self._run(self._pg_ctl, "-D", str(self.datadir), *args)

    def start(self) -> None:
        options = f"-p {self.port} -k {self._root} -c listen_addresses={HOST}"
        self._ctl("-o", options, "-l", str(self._root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop (ending every session) and start again on the same port."""
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        """Stop at once (whatever state it is in) and remove the cluster's folder."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self._root, ignore_errors=True)
