"""The embedding example in examples/ runs and scales the fake fleet as it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "embed.py"
PASS_LINE = re.compile(
    r"^queue_depth=(?P<depth>\S+) target=(?P<target>\d+) "
    r"started=(?P<started>\S+) fleet: (?P<fleet>.*)$"
)


def run_example() -> subprocess.CompletedProcess[str]:
    """Run examples/embed.py in a fresh interpreter and return the result."""
    return subprocess.run(  # noqa: S603 - our own script, our own interpreter
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def passes(stdout: str) -> list[dict[str, str]]:
    """Return the per-pass lines of the example's output, parsed."""
    return [
        m.groupdict() for line in stdout.splitlines() if (m := PASS_LINE.match(line))
    ]


def test_example_exits_cleanly() -> None:
    """The example exits 0 and writes nothing to stderr."""
    proc = run_example()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_example_reaches_each_target() -> None:
    """Each pass starts or stops Machines until ceil(queue_depth / 10) are started."""
    proc = run_example()
    assert proc.returncode == 0, proc.stderr
    seen = passes(proc.stdout)
    assert [p["depth"] for p in seen] == ["0", "25", "40", "5"]
    assert [int(p["target"]) for p in seen] == [0, 3, 4, 1]
    started = [[] if p["started"] == "-" else p["started"].split(",") for p in seen]
    assert [len(ids) for ids in started] == [0, 3, 4, 1]
    assert started[1] == ["m1", "m2", "m3"]  # lowest ids are started first


def test_example_keeps_every_machine() -> None:
    """Start/stop scaling never creates or destroys: the four Machines stay."""
    proc = run_example()
    assert proc.returncode == 0, proc.stderr
    for p in passes(proc.stdout):
        ids = [entry.split("=")[0] for entry in p["fleet"].split()]
        assert ids == ["m1", "m2", "m3", "m4"]
    assert "failures:" not in proc.stdout
