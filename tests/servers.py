"""Helpers for tests that start real servers or need optional extras."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest

from flyautoscaler._extras import install_hint


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ipv6_loopback() -> bool:
    """Whether this machine can bind ::1 (some containers have no IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def eventually(
    condition: Callable[[], bool], *, deadline: float = 10.0, poll: float = 0.01
) -> None:
    """Poll *condition* every *poll* s until it holds; fail after *deadline* s."""
    end = time.monotonic() + deadline
    pause = threading.Event()  # never set: a wait that a condition ends, not a sleep
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"not true within {deadline} s: {condition}")
        pause.wait(poll)


def require_binary(name: str, package: str) -> str:
    """Return the binary's path; skip (locally) or fail (in CI) without it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found; install with: apt-get install {package}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate *proc* and reap it, killing it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def import_or_skip(name: str, extra: str) -> ModuleType:
    """Import *name*; skip the module locally without it, fail in CI's full session."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"{name} missing; install with: {install_hint(extra)}"
        if os.environ.get("CI") and not os.environ.get("FAS_MINIMAL_TESTS"):
            pytest.fail(message)
        pytest.skip(message, allow_module_level=True)


def wait_ready(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    name: str,
    log: Path,
    deadline: float,
    poll: float,
) -> None:
    """Poll *ready* until it holds; fail if *proc* exits or *deadline* s pass.

    Raises:
        RuntimeError: The process exited (the tail of its log is in the message).
    """
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if ready():
            return
        try:
            code = proc.wait(timeout=poll)  # the poll interval, and a liveness check
        except subprocess.TimeoutExpired:
            continue
        log_tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} exited with {code}:\n{log_tail}")
    stop(proc)
    pytest.fail(f"{name} did not become ready in {deadline} s")


#: The password of every test redis-server.
REDIS_PASSWORD = "correct-horse-battery"  # noqa: S105 - the test servers' password


class RedisServer:
    """A real ``redis-server`` on 127.0.0.1 (no persistence, a password).

    Skips the test (fails in CI) without the binary; redis-py must be
    installed. :meth:`kill` and :meth:`start` again on the same port make a
    Redis that restarts without its data.
    """

    STARTUP_DEADLINE = 60.0

    def __init__(self, workdir: Path, *, password: str = REDIS_PASSWORD) -> None:
        self.binary = require_binary("redis-server", "redis-server")
        self.workdir = workdir
        self.password = password
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, password: str | None = None) -> str:
        """Return the server's URL, with its password unless another is given."""
        secret = self.password if password is None else password
        return f"redis://:{secret}@127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server: on its port again if it had one, else on a free port."""
        attempts = 1 if self.port else 3  # a free port may be taken before Redis binds
        for attempt in range(attempts):
            port = self.port or free_port()
            try:
                self._start(port)
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                continue
            self.port = port
            return self
        raise AssertionError("unreachable")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL) and reap it; its data is lost."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=15)
            self.proc = None

    def stop(self) -> None:
        """Terminate the server, if it runs."""
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def _start(self, port: int) -> None:
        log_path = self.workdir / "redis.log"
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed arguments
                [
                    self.binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                    "--requirepass",
                    self.password,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
            )
        redis = importlib.import_module("redis")

        def answers() -> bool:
            try:
                with redis.Redis(
                    host="127.0.0.1",
                    port=port,
                    password=self.password,
                    socket_timeout=2,
                ) as client:
                    client.ping()
            except redis.RedisError:
                return False
            return True

        wait_ready(
            self.proc,
            answers,
            name="redis-server",
            log=log_path,
            deadline=self.STARTUP_DEADLINE,
            poll=0.1,
        )


def run_prometheus(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    config: str,
    ready: Callable[[str], bool],
    prepare: Callable[[Path], None] | None = None,
    args: Sequence[str] = (),
    deadline: float = 90.0,
) -> Iterator[str]:
    """Run the ``prometheus`` binary on 127.0.0.1; yield its address, then stop it.

    For a fixture: ``yield from run_prometheus(...)``. Without the binary the
    test is skipped (locally) or fails (in CI).

    Args:
        tmp_path_factory: Where its working directories go.
        config: Its configuration file's text.
        ready: Given the address, whether it is ready for the tests.
        prepare: Called with its data directory before it starts (to
            backfill blocks there, for example).
        args: More command-line flags.
        deadline: Seconds it may take to become ready.
    """
    binary = require_binary("prometheus", "prometheus")
    for attempt in range(3):  # the free port may be taken before Prometheus binds
        workdir = tmp_path_factory.mktemp(f"prometheus{attempt}")
        (workdir / "prometheus.yml").write_text(config, encoding="utf-8")
        if prepare is not None:
            prepare(workdir / "data")
        port = free_port()
        address = f"http://127.0.0.1:{port}"
        log = workdir / "prometheus.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - fixed arguments
                [
                    binary,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                    *args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=workdir,
            )
        try:
            wait_ready(
                proc,
                lambda: ready(address),  # noqa: B023 - called before the next turn
                name="prometheus",
                log=log,
                deadline=deadline,
                poll=0.25,
            )
        except RuntimeError:
            if attempt == 2:
                raise
            continue
        try:
            yield address
        finally:
            stop(proc)
        return
