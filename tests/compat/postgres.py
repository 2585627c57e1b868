"""A throwaway PostgreSQL cluster for the compatibility harness: the real server, in a temporary
directory, on a free port of 127.0.0.1 (the Python twin of crates/floe-testkit/src/postgres.rs).

    with TestPostgres(log_path) as cluster:
        url = cluster.create_database("floe")    # postgres://postgres@127.0.0.1:<port>/floe

`initdb`, `postgres` and `psql` come from the installation whose `initdb` is first on `PATH`, else the
newest `/usr/lib/postgresql/<version>/bin` (scripts/test.sh installs PostgreSQL when it is missing);
without one the harness fails, it does not skip. Both refuse to run as root: as root the server runs
as the system user `floe-pg` (the testkit's, created on first use) through `setpriv`, which execs, so
the server is this process's child. It listens on 127.0.0.1 and a socket in its directory only, and
trusts local connections as the superuser `postgres`. Its data is thrown away: `fsync` is off.

Stopping kills the server's process group and removes the directory. The directory is named like the
testkit's (`floe-pg-*`, with `owner.pid`), so a cluster left behind by a killed test process is
removed by the next start, here or in the Rust tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

from floe_server import free_port

SERVER_USER = "floe-pg"  # as in floe-testkit
SUPERUSER = "postgres"
DIR_PREFIX = "floe-pg-"
READY_TIMEOUT_SECONDS = 60.0


def find_bindir() -> Path:
    """The directory of the first `initdb` on PATH (symlinks resolved), else of the newest
    /usr/lib/postgresql/<version>/bin/initdb."""
    initdb = shutil.which("initdb")
    if initdb is None:
        versions = sorted(
            (int(d.name), d / "bin" / "initdb")
            for d in Path("/usr/lib/postgresql").glob("*")
            if d.name.isdigit() and (d / "bin" / "initdb").is_file()
        )
        if not versions:
            raise RuntimeError(
                "PostgreSQL's `initdb` is neither on PATH nor under /usr/lib/postgresql/*/bin: install the "
                "PostgreSQL server (Debian: postgresql; scripts/test.sh does) to run the PostgreSQL set-up"
            )
        initdb = str(versions[-1][1])
    bindir = Path(initdb).resolve().parent
    for tool in ("postgres", "psql"):
        if not (bindir / tool).is_file():
            raise RuntimeError(f"`{tool}` is missing next to {bindir / 'initdb'}")
    return bindir


def server_version() -> Optional[str]:
    """The version of the PostgreSQL server the harness runs (e.g. "15.18"), None if there is none."""
    try:
        output = subprocess.run(
            [str(find_bindir() / "postgres"), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return None
    # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    words = output.split()
    return words[2] if len(words) > 2 else None


def server_user() -> Optional[tuple[int, int]]:
    """None unless this process is root; then (uid, gid) of SERVER_USER, created if missing."""
    if os.geteuid() != 0:
        return None

    def lookup() -> Optional[tuple[int, int]]:
        try:
            import pwd

            entry = pwd.getpwnam(SERVER_USER)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            return None

    if (ids := lookup()) is not None:
        return ids
    # Another test process may create it at the same time: only the lookup after decides.
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", SERVER_USER],
        check=False,
        capture_output=True,
    )
    if (ids := lookup()) is None:
        raise RuntimeError(f"PostgreSQL refuses to run as root, and the user {SERVER_USER!r} could not be created")
    return ids


def process_name(pid: int) -> Optional[str]:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def remove_orphans() -> None:
    """Removes clusters (ours or the testkit's) whose test process is gone, killing their server."""
    for directory in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        try:
            owner = int((directory / "owner.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if process_name(owner) is not None:
            continue
        try:
            server = int((directory / "data" / "postmaster.pid").read_text().splitlines()[0])
            if process_name(server) == "postgres":
                os.killpg(server, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
        shutil.rmtree(directory, ignore_errors=True)


class TestPostgres:
    """A running PostgreSQL cluster (see the module docs); a context manager."""

    __test__ = False  # not a pytest test class

    def __init__(self, log_path: Path) -> None:
        self.log_path = Path(log_path)
        self.bindir = find_bindir()
        self.run_as = server_user()
        self.dir: Optional[Path] = None
        self.port: Optional[int] = None
        self._process: Optional[subprocess.Popen[bytes]] = None

    def url(self, database: str = "postgres") -> str:
        assert self.port is not None, "cluster not started"
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> "TestPostgres":
        remove_orphans()
        self.dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        (self.dir / "socket").mkdir()
        if self.run_as is not None:
            for path in (self.dir, self.dir / "socket"):
                os.chown(path, *self.run_as)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._run_checked(
                "initdb",
                ["--pgdata", str(self.dir / "data"), "--username", SUPERUSER, "--auth=trust", "--encoding=UTF8"]
                + ["--no-locale", "--no-instructions", "--no-sync"],
            )
            for attempt in range(5):  # the free port may be taken by someone else before the server binds it
                self.port = free_port()
                error = self._spawn()
                if error is None:
                    return self
                if "could not bind" not in error or attempt == 4:
                    raise RuntimeError(f"PostgreSQL did not start: {error}")
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def create_database(self, name: str) -> str:
        """Creates the database `name` and returns its URL."""
        self.psql("postgres", f"CREATE DATABASE {name}")
        return self.url(name)

    def psql(self, database: str, sql: str) -> str:
        """Runs `sql` in `database` as the superuser; its unaligned output. Raises if it fails."""
        result = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
            + ["-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10", "LC_ALL": "C"},
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {result.stderr.strip()}")
        return result.stdout

    def stop(self) -> None:
        """Kills the server and its backends (nothing of the cluster is kept) and removes the directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "TestPostgres":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------------

    def _command(self, program: str, args: list[str]) -> list[str]:
        """`program` of the installation with `args`, as the server's user when this process is root."""
        command = [str(self.bindir / program), *args]
        if self.run_as is None:
            return command
        uid, gid = self.run_as
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *command]

    def _env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k != "PGDATA"} | {"LC_ALL": "C"}

    def _run_checked(self, program: str, args: list[str]) -> None:
        result = subprocess.run(
            self._command(program, args),
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            env=self._env(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed:\n{result.stdout}{result.stderr}")

    def _spawn(self) -> Optional[str]:
        """Starts the server and waits until it accepts connections: None, or why it did not start
        (with what it logged meanwhile)."""
        assert self.dir is not None and self.port is not None
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== postgres -D {self.dir / 'data'} -h 127.0.0.1 -p {self.port}\n".encode())
            log.flush()
            process = subprocess.Popen(
                self._command(
                    "postgres",
                    ["-D", str(self.dir / "data"), "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.dir / "socket")]
                    + ["-c", "fsync=off", "-c", "max_connections=100", "-c", "shared_buffers=32MB"],
                ),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                # Its own process group: stop() reaches every backend, a Ctrl-C meant for pytest does not.
                process_group=0,
            )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        pid_file = self.dir / "data" / "postmaster.pid"
        while True:
            if process.poll() is not None:
                failure = f"postgres exited with {process.returncode}"
                break
            # The postmaster writes "ready" on its lock file's 8th line once it accepts connections.
            try:
                lines = [line.strip() for line in pid_file.read_text().splitlines()]
            except OSError:
                lines = []
            if lines[:1] == [str(process.pid)] and len(lines) > 7 and lines[7] == "ready":
                self._process = process
                return None
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                failure = f"postgres was not ready within {READY_TIMEOUT_SECONDS:.0f} s"
                break
            time.sleep(0.02)
        with open(self.log_path, "rb") as log:
            log.seek(log_start)
            logged = log.read().decode(errors="replace")
        return f"{failure}; its log:\n{logged}"

