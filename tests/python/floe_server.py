"""Start and stop a real `floe serve` process for end-to-end tests.

Standard library only, so that scripts/test.sh can use it too:

    python tests/python/floe_server.py free-port
    python tests/python/floe_server.py wait-ready http://127.0.0.1:PORT [--pid PID] [--timeout SECONDS]

The binary is `$FLOE_BIN`, else `<target dir>/debug/floe` (`$CARGO_TARGET_DIR` or `<repo>/target`).
When `$FLOE_TEST_PID_FILE` is set, every server started here appends its pid to that file, so that
scripts/test.sh can kill it even if the Python process that started it dies without cleaning up.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


def floe_binary() -> Path:
    """Where the `floe` binary is: `$FLOE_BIN`, else the debug build in the cargo target dir."""
    if explicit := os.environ.get("FLOE_BIN"):
        return Path(explicit).resolve()
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target_dir.is_absolute():
        target_dir = REPO_ROOT / target_dir
    return target_dir / "debug" / "floe"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller retries if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch_config(uri: str, timeout: float = 2.0, token: Optional[str] = None) -> Optional[dict[str, Any]]:
    """`GET {uri}/v1/config` as JSON if it answers 200; `{}` if it wants a token it was not given (401:
    the server is up, with `--auth oauth2` or `oidc`); else None."""
    request = urllib.request.Request(f"{uri}/v1/config")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status == 200:
                return json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 401 and token is None:
            return {}
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        pass
    return None


def fetch_token(uri: str, credential: str, timeout: float = 10.0) -> str:
    """A bearer token for `credential` (`CLIENT_ID:SECRET`) from the server's `POST /v1/oauth/tokens`."""
    client_id, _, client_secret = credential.strip().partition(":")
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret, "scope": "catalog"}
    ).encode()
    with urllib.request.urlopen(f"{uri}/v1/oauth/tokens", data=form, timeout=timeout) as response:
        return str(json.loads(response.read())["access_token"])


def wait_ready(
    uri: str,
    timeout: float = READY_TIMEOUT_SECONDS,
    is_alive: Any = None,
) -> dict[str, Any]:
    """Poll `/v1/config` until it answers 200; raise if `is_alive()` turns false or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        config = fetch_config(uri)
        if config is not None:
            return config
        if is_alive is not None and not is_alive():
            raise RuntimeError(f"floe server for {uri} exited before it was ready")
        if time.monotonic() > deadline:
            raise TimeoutError(f"floe server at {uri} not ready after {timeout:.0f}s")
        time.sleep(0.1)


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the parent (the test process) dies (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:
        pass


class FloeServer:
    """One `floe serve` process on a free loopback port, with its output in a log file.

    Usable as a context manager. Stopping and starting again on the same `data_dir` is a restart:
    the new process gets a new port (and so a new `uri`).
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        binary: Optional[Path] = None,
        extra_args: Sequence[str] = (),
        env: Optional[dict[str, str]] = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.log_path = Path(log_path)
        self.binary = binary or floe_binary()
        self.extra_args = list(extra_args)  # more `floe serve` flags, e.g. an s3:// warehouse
        self.env = dict(env or {})  # more environment, e.g. AWS_ACCESS_KEY_ID
        self.port: Optional[int] = None
        self.config: dict[str, Any] = {}
        self._process: Optional[subprocess.Popen[bytes]] = None

    @property
    def uri(self) -> str:
        assert self.port is not None, "server not started"
        return f"http://127.0.0.1:{self.port}"

    @property
    def prefix(self) -> Optional[str]:
        """The default warehouse's URL prefix, from `/v1/config` overrides (None if there is none)."""
        return self.config.get("overrides", {}).get("prefix")

    @property
    def warehouse(self) -> Optional[str]:
        return self.config.get("overrides", {}).get("warehouse")

    @property
    def admin_credential(self) -> Optional[str]:
        """`CLIENT_ID:SECRET` of the first administrator, which `--auth oauth2` writes into the data dir."""
        try:
            return (self.data_dir / "admin-credential").read_text().strip()
        except FileNotFoundError:
            return None

    def token(self, credential: Optional[str] = None) -> str:
        """A bearer token for `credential` (default: the first administrator's)."""
        credential = credential or self.admin_credential
        if credential is None:
            raise RuntimeError(f"no admin-credential in {self.data_dir}: is this server started with --auth oauth2?")
        return fetch_token(self.uri, credential)

    def start(self, attempts: int = 3) -> "FloeServer":
        if not self.binary.exists():
            raise FileNotFoundError(
                f"floe binary not found at {self.binary}: run `cargo build -p floe` or set FLOE_BIN"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        last_error: Optional[Exception] = None
        for _ in range(attempts):  # the free port may be taken by someone else before we bind it
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== floe serve --data-dir {self.data_dir} --port {self.port}\n".encode())
                log.flush()
                self._process = subprocess.Popen(
                    [
                        str(self.binary), "serve",
                        "--data-dir", str(self.data_dir),
                        "--host", "127.0.0.1",
                        "--port", str(self.port),
                        *self.extra_args,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                    env={**os.environ, **self.env, "NO_COLOR": "1"},  # plain text in the log file
                )
            if pid_file := os.environ.get("FLOE_TEST_PID_FILE"):
                with open(pid_file, "a") as f:
                    f.write(f"{self._process.pid}\n")
            try:
                self.config = wait_ready(self.uri, is_alive=lambda: self._process.poll() is None)
                if not self.config and self.admin_credential is not None:
                    # An oauth2 server answers /v1/config only with a token: read it as its administrator.
                    self.config = fetch_config(self.uri, token=self.token()) or {}
                return self
            except (RuntimeError, TimeoutError) as error:
                last_error = error
                self.stop()
        raise RuntimeError(f"{last_error}\n--- tail of {self.log_path}:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> "FloeServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("free-port", help="print a free TCP port on 127.0.0.1")
    ready = commands.add_parser("wait-ready", help="wait until GET URI/v1/config answers 200")
    ready.add_argument("uri")
    ready.add_argument("--pid", type=int, help="fail at once if this process exits")
    ready.add_argument("--timeout", type=float, default=READY_TIMEOUT_SECONDS)
    args = parser.parse_args()

    if args.command == "free-port":
        print(free_port())
        return 0

    def alive() -> bool:
        if args.pid is None:
            return True
        try:
            os.kill(args.pid, 0)
        except ProcessLookupError:
            return False
        # A zombie (exited, not yet reaped by its parent shell) still answers kill 0.
        try:
            return Path(f"/proc/{args.pid}/stat").read_text().split(") ")[1][0] != "Z"
        except (FileNotFoundError, IndexError):
            return False

    try:
        config = wait_ready(args.uri, timeout=args.timeout, is_alive=alive)
    except (RuntimeError, TimeoutError) as error:
        print(error, file=sys.stderr)
        return 1
    print(json.dumps(config))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
