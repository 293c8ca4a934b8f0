"""Running the ``flyautoscaler`` command in tests: a subprocess, its log, its HTTP."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

WAIT = 60.0  # generous: a loaded 2-core machine starts Python slowly


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any FAS_/FLY_/TEMPORAL_ variable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FAS_", "FLY_", "TEMPORAL_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run ``python -m flyautoscaler ARGS`` and return the finished process."""
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "flyautoscaler", *args],
        env=base_env() if env is None else env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


class Process:
    """A running ``serve`` whose stderr lines are read as they come."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our module, our arguments
            [sys.executable, "-m", "flyautoscaler", "serve", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.stdout = ""
        self.ended = False  # stderr closed: the process exited
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        """Re-check *predicate* on each stderr line (at least every 0.1 s)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"timed out; stderr so far:\n{''.join(self.lines)}")
            try:
                line = (
                    None if self.ended else self._queue.get(timeout=min(0.1, remaining))
                )
            except queue.Empty:
                continue
            if line is None:
                self.ended = True
                pytest.fail(f"serve exited early:\n{''.join(self.lines)}")
            self.lines.append(line)

    def events(self, name: str) -> list[dict[str, object]]:
        """The JSON log lines whose event is *name*, of the lines read so far."""
        self.drain()
        return [e for e in map(json.loads, self.lines) if e["event"] == name]

    def drain(self) -> None:
        """Take the lines already read from stderr, without waiting for more."""
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is None:
                self.ended = True
            else:
                self.lines.append(line)

    def stop(self, sig: signal.Signals) -> int:
        """Send *sig*, wait for the exit, drain the output; return the status."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=WAIT)
        self._reader.join(WAIT)
        self.drain()
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()
        return code

    def kill(self) -> None:
        """Kill the process if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def http_get(url: str) -> tuple[int, str]:
    """GET *url*; return the status and the body."""
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
