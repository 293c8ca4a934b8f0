"""Development sessions: ``python3 -m nox`` runs every check; ``-s NAME`` one.

Every session installs from PyPI only. Virtualenvs are reused between runs, and each
run reinstalls the package (it is installed, not linked, so the tests see what a
user gets). ``-R`` also skips the installs: faster, but the package then stays as
it was last installed.
"""

from __future__ import annotations

import nox

#: The Pythons flyautoscaler supports (pyproject.toml's classifiers): the tests run
#: on each; the other sessions, whose result does not depend on it, on the oldest.
PYTHONS = ["3.11", "3.12", "3.13"]
PYTHON = PYTHONS[0]

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests", "tests_minimal", "lint", "typecheck", "docs"]


# The suite on one worker per core (pytest-xdist): much of it waits on sockets
# and threads, so two workers on two cores take about 60 % of the time.
_PARALLEL = ("-n", "auto")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite; extra arguments go to pytest (``-- -k reconcile``).

    Runs once per supported Python (``-s tests-3.12`` for one); each must be on
    ``PATH`` as ``python3.X``. The optional extras are installed, so every
    collector is tested. The Prometheus and Redis tests start the ``prometheus``
    and ``redis-server`` binaries: without them they skip, or fail when ``CI``
    is set.
    """
    session.install(".[tests,redis,temporal,plot]")
    # pytest exits 5 when it collects no test: that is a failure here too.
    session.run("pytest", *_PARALLEL, *session.posargs)


@nox.session(python=PYTHON)
def tests_minimal(session: nox.Session) -> None:
    """Run the test suite without the optional extras (redis-py, temporalio).

    The package must import and work without them; their collectors' tests
    skip, even in CI (``FAS_MINIMAL_TESTS``). On the oldest Python only: what
    it checks (imports guarded by extras) does not vary between them.
    """
    session.install(".[tests]")
    session.run("pytest", *_PARALLEL, *session.posargs, env={"FAS_MINIMAL_TESTS": "1"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and check the formatting of every Python file."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check the package, then the public API as a user sees it."""
    session.install(".[tests,typing,redis,temporal,plot]")
    session.run("mypy", "--strict", "flyautoscaler")
    session.run("mypy", "--strict", "tests/typing/api.py")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the HTML docs; any Sphinx warning fails the build."""
    session.install(".[docs]")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmarks (not part of the default sessions).

    ``benchmarks/expressions.py`` times the expression compiler;
    ``benchmarks/policy.py`` compares scaling policies on four synthetic loads
    in the simulator (about half a minute); ``benchmarks/leases.py``
    measures what Fly Machine leases cost a pass;
    ``benchmarks/scaling.py`` times reconcile passes against the fake Machines
    API (about three minutes) and exits 1 if a target is missed;
    ``benchmarks/simulate.py`` reports the simulator's passes per second for an
    hour, a day and a week of 15 s ticks (about a minute and a half) and exits
    1 if the week takes a minute or more; ``benchmarks/replicas.py`` times one
    round over 2,000 apps with 1, 2 and 4 replicas coordinating through Redis
    (about three minutes; it needs ``redis-server``, and says it skipped
    without it). Extra arguments go to ``scaling.py`` (``-- --full`` also
    creates 200 Machines).
    """
    session.install(".[redis]")
    session.run("python", "benchmarks/expressions.py")
    session.run("python", "benchmarks/policy.py")
    session.run("python", "benchmarks/leases.py")
    session.run("python", "benchmarks/scaling.py", *session.posargs)
    session.run("python", "benchmarks/simulate.py")
    session.run("python", "benchmarks/replicas.py")
