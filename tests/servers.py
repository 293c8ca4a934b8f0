"""Helpers for tests that start real servers or need optional extras."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
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
