"""The container image definition, checked without a Docker daemon.

No image can be built here, so these tests check what can be checked from the
files alone: the Dockerfile copies files that exist and that ``.dockerignore`` lets
through; its install steps, run by ``/bin/sh`` as the build would run them (with
the image's paths moved into a temporary folder), build the wheels and install them
into a fresh virtualenv, from which the command it starts answers ``--help``; its
health check is Python that asks ``/healthz`` and fails on a 503; it runs as a
user other than root; ``.dockerignore`` keeps local state out; ``fly.toml`` agrees
with it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from prometheus_client import CollectorRegistry

from flyautoscaler.cli._httpserver import MetricsServer, metrics_app
from flyautoscaler.cli.simulate import _out_dir
from flyautoscaler.config import DEFAULT_METRICS_ADDRESS

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
FLY_TOML = ROOT / "fly.toml"
#: Seconds one step of the install (a pip run, a --help) may take.
STEP_TIMEOUT = 300
#: What pip prints when it cannot reach the package index.
NETWORK_ERRORS = (
    "Could not fetch URL",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "NewConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
)


# --- reading the files --------------------------------------------------------------


@attrs.frozen
class Instruction:
    """One Dockerfile instruction: its keyword, its --flags and the rest."""

    keyword: str
    flags: tuple[str, ...]
    rest: str

    def json_args(self) -> list[str]:
        """The arguments of the exec (JSON) form."""
        args = json.loads(self.rest)
        assert isinstance(args, list), self
        return [str(a) for a in args]


@attrs.frozen
class Stage:
    """One FROM and the instructions after it."""

    name: str
    base: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        """This stage's instructions of *keyword*."""
        return [i for i in self.instructions if i.keyword == keyword]

    def arg_defaults(self) -> dict[str, str]:
        """The ARGs this stage declares, with their default values."""
        defaults = {}
        for arg in self.all("ARG"):
            name, _, value = arg.rest.partition("=")
            defaults[name] = "".join(shlex.split(value))
        return defaults


def instructions(text: str) -> list[Instruction]:
    """Parse a Dockerfile: join continued lines, drop comments, split flags off."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue  # a comment, also inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            logical.append(current.strip())
        current = ""
    parsed = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        flags = []
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        parsed.append(Instruction(keyword.upper(), tuple(flags), rest))
    return parsed


def stages() -> list[Stage]:
    """The Dockerfile's stages, in order; the last one is the image."""
    result: list[Stage] = []
    base, name, body = "", "", []
    for instruction in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            if base:
                result.append(Stage(name, base, tuple(body)))
            words = instruction.rest.split()
            base = words[0]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            body = []
        elif base:
            body.append(instruction)
    result.append(Stage(name, base, tuple(body)))
    return result


def builder() -> Stage:
    """The stage the image's install mounts its wheels from."""
    (stage,) = [s for s in stages()[:-1] if s.name]
    return stage


def image() -> Stage:
    """The final stage: what the image is."""
    return stages()[-1]


def ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """``.dockerignore``'s patterns: (is an exception, regex), in order."""
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!")).lstrip("/")
        patterns.append((exception, re.compile(_glob_regex(pattern))))
    return patterns


def _glob_regex(pattern: str) -> str:
    """Docker's pattern syntax (Go's filepath.Match, plus ``**``) as a regex."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def ignored(path: str) -> bool:
    """Whether the build context leaves out *path* (relative, with ``/``).

    As Docker does: a path is out when the last pattern matching it, or one of
    the folders above it, excludes it.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    out = False
    for exception, regex in ignore_patterns():
        if any(regex.fullmatch(p) for p in prefixes):
            out = not exception
    return out


def copies(stage: Stage) -> list[tuple[list[str], str]]:
    """The (sources, destination) of each COPY from the build context."""
    result = []
    for copy in stage.all("COPY"):
        if any(f.startswith("--from") for f in copy.flags):
            continue
        words = (
            copy.json_args() if copy.rest.startswith("[") else shlex.split(copy.rest)
        )
        result.append((words[:-1], words[-1]))
    return result


# --- the Dockerfile alone -----------------------------------------------------------


def test_bases_are_slim_official_python_of_one_minor_version() -> None:
    """Every stage starts from the same python:3.N-slim."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    preamble = instructions(text.partition("\nFROM ")[0])
    defaults = dict(
        i.rest.split("=", 1) for i in preamble if i.keyword == "ARG" and "=" in i.rest
    )
    bases = {re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], s.base) for s in stages()}
    assert len(stages()) >= 2, "a build stage and the image"
    (base,) = bases
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base), base


def test_copied_files_exist_and_are_not_ignored() -> None:
    """Each COPY source exists, and none of the files it holds is ignored."""
    tracked = subprocess.run(
        ["git", "ls-files"],  # noqa: S607 - git from PATH, as a developer runs it
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    sources = [src for stage in stages() for srcs, _ in copies(stage) for src in srcs]
    assert sources
    for source in sources:
        relative = os.path.normpath(source)
        assert (ROOT / relative).exists(), source
        assert not ignored(relative), source
        inside = [f for f in tracked if f == relative or f.startswith(relative + "/")]
        assert inside, f"{source}: no file of the repository"
        assert not [f for f in inside if ignored(f)], source


def test_image_installs_wheels_only() -> None:
    """The image copies no source: it installs the builder's wheels, offline."""
    final = image()
    assert not final.all("COPY"), "the image copies nothing from the context"
    (install,) = [r for r in final.all("RUN") if "pip" in r.rest]
    assert f"from={builder().name}" in " ".join(install.flags)
    assert "--no-index" in install.rest
    assert "--find-links" in install.rest
    (wheel,) = [r for r in builder().all("RUN") if "pip" in r.rest]
    assert "pip wheel" in wheel.rest


def test_image_runs_as_a_user_other_than_root() -> None:
    """The image's last USER is neither root nor uid 0."""
    users = image().all("USER")
    assert users, "no USER: the image would run as root"
    user, _, group = users[-1].rest.partition(":")
    assert user not in {"root", "0"}, users[-1]
    assert group not in {"root", "0"}, users[-1]


def test_image_runs_serve_and_exposes_the_metrics_port() -> None:
    """ENTRYPOINT is the command, CMD is serve, EXPOSE is the default metrics port."""
    final = image()
    (entrypoint,) = final.all("ENTRYPOINT")
    (cmd,) = final.all("CMD")
    (expose,) = final.all("EXPOSE")
    assert entrypoint.json_args() == ["flyautoscaler"]
    assert cmd.json_args() == ["serve"]
    assert expose.rest == DEFAULT_METRICS_ADDRESS.rpartition(":")[2]


def test_no_secret_is_built_in() -> None:
    """No ARG or ENV names a token, key, password or secret."""
    for stage in stages():
        for instruction in stage.all("ARG") + stage.all("ENV"):
            names = re.findall(r"(\w+)=", instruction.rest) or [instruction.rest]
            for name in names:
                assert not re.search(r"TOKEN|KEY|SECRET|PASSWORD", name.upper()), name


@pytest.mark.parametrize(
    ("extras", "project", "package"),
    [("", ".", "flyautoscaler"), ("redis,temporal", ".[redis,temporal]", None)],
)
def test_extras_build_argument(extras: str, project: str, package: str | None) -> None:
    """EXTRAS picks the extras: none by default, the named ones when set."""
    assert builder().arg_defaults()["EXTRAS"] == ""
    assert image().arg_defaults()["EXTRAS"] == ""
    (wheel,) = [r for r in builder().all("RUN") if "pip wheel" in r.rest]
    (install,) = [r for r in image().all("RUN") if "--no-index" in r.rest]
    spec = re.compile(r"\"[^\"]*\$\{EXTRAS[^\"]*\"")

    def expand(command: str) -> str:
        (word,) = spec.findall(command)
        return subprocess.run(  # noqa: S603 - the Dockerfile's own words
            ["/bin/sh", "-c", f"printf %s {word}"],
            env={"EXTRAS": extras},
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout

    assert expand(wheel.rest) == project
    assert expand(install.rest) == (package or f"flyautoscaler[{extras}]")


# --- the health check ---------------------------------------------------------------


def healthcheck_code() -> str:
    """The Python the HEALTHCHECK runs."""
    (check,) = image().all("HEALTHCHECK")
    kind, _, command = check.rest.partition(" ")
    assert kind == "CMD", check
    args = json.loads(command)
    assert args[:2] == ["python", "-c"], args
    assert len(args) == 3, args
    return str(args[2])


def test_healthcheck_is_python_asking_healthz() -> None:
    """The HEALTHCHECK is valid Python with a bounded request to /healthz."""
    code = healthcheck_code()
    compile(code, "HEALTHCHECK", "exec")
    assert "/healthz" in code
    assert "timeout=" in code


@attrs.define
class Health:
    """A /healthz answer that the test sets."""

    status: int = 200

    def __call__(self) -> tuple[int, bytes]:
        return self.status, b'{"status": "test"}'


@pytest.fixture
def served_health() -> Iterator[tuple[Health, int]]:
    """serve's HTTP listener on 127.0.0.1, with a settable health; its port."""
    health = Health()
    server = MetricsServer("127.0.0.1", 0, metrics_app(CollectorRegistry(), health))
    server.start()
    try:
        yield health, int(server.server_address[1])
    finally:
        server.close()


def run_healthcheck(port: int) -> int:
    """Run the HEALTHCHECK's Python against *port*; return its exit status."""
    env = {**os.environ, "FAS_METRICS_ADDRESS": f"127.0.0.1:{port}"}
    return subprocess.run(  # noqa: S603 - the Dockerfile's own check
        [sys.executable, "-c", healthcheck_code()],
        env=env,
        capture_output=True,
        check=False,
        timeout=30,
    ).returncode


def test_healthcheck_passes_on_200_and_fails_on_503(served_health) -> None:
    """Against serve's listener: healthy is exit 0, a 503 is not."""
    health, port = served_health
    assert run_healthcheck(port) == 0
    health.status = 503
    assert run_healthcheck(port) != 0


def test_healthcheck_fails_when_nothing_answers() -> None:
    """With nothing listening on the port, the check fails."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = int(probe.getsockname()[1])
    assert run_healthcheck(free_port) != 0


# --- .dockerignore and fly.toml -----------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        "venv/bin/python",
        "venv-c/lib/site.py",
        ".nox/tests/bin/python",
        ".env",
        "flyautoscaler/__pycache__/_plan.cpython-312.pyc",
        ".mypy_cache/3.11/x.json",
        ".pytest_cache/v/cache/nodeids",
        ".hypothesis/examples/x",
        "dist/flyautoscaler-0.1.0-py3-none-any.whl",
        "build/lib/flyautoscaler/__init__.py",
        "docs/_build/html/index.html",
    ],
)
def test_dockerignore_keeps_local_state_out(path: str) -> None:
    """Virtualenvs, nox, git data, caches and build output stay out."""
    assert ignored(path)


def test_dockerignore_keeps_simulator_output_out(tmp_path, monkeypatch) -> None:
    """The folder simulate writes by default stays out."""
    monkeypatch.chdir(tmp_path)
    folder = _out_dir(None)
    assert ignored(f"{folder.name}/simulation.csv")
    assert ignored(f"examples/{folder.name}/simulation.csv")


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "README.md", "flyautoscaler/__init__.py"]
)
def test_dockerignore_keeps_what_the_build_needs(path: str) -> None:
    """The files the build copies stay in."""
    assert not ignored(path)


def test_fly_toml_matches_the_dockerfile() -> None:
    """fly.toml builds this Dockerfile, scrapes and checks the port it serves."""
    fly = tomllib.loads(FLY_TOML.read_text(encoding="utf-8"))
    port = int(DEFAULT_METRICS_ADDRESS.rpartition(":")[2])
    assert (FLY_TOML.parent / fly["build"]["dockerfile"]) == DOCKERFILE
    assert set(fly["build"].get("args", {})) <= set(builder().arg_defaults())
    env = fly["env"]
    assert {"FAS_APP_NAME", "FAS_PROMETHEUS_ADDRESS"} <= set(env)
    assert not [name for name in env if "TOKEN" in name], "tokens are secrets"
    assert env.get("FAS_METRICS_ADDRESS", DEFAULT_METRICS_ADDRESS).endswith(f":{port}")
    assert fly["metrics"] == {"port": port, "path": "/metrics"}
    (check,) = fly["checks"].values()
    assert check["type"] == "http"
    assert check["port"] == port
    assert check["path"] == "/healthz"


# --- the install steps --------------------------------------------------------------


def run_step(
    command: str, *, cwd: Path, paths: dict[str, Path], env: dict[str, str]
) -> None:
    """Run a RUN instruction's shell command with the image's paths moved.

    Skips the test when pip cannot reach the package index.
    """
    for image_path, local in sorted(paths.items(), key=lambda p: -len(p[0])):
        command = re.sub(
            rf"(?<![\w/.]){re.escape(image_path)}(?![\w.-])", str(local), command
        )
    # The build runs without pip's cache; here it may use it (same result, faster).
    command = command.replace("--no-cache-dir", "")
    proc = subprocess.run(  # noqa: S603 - the Dockerfile's own command
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=STEP_TIMEOUT,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode and any(e in output for e in NETWORK_ERRORS):
        pytest.skip(f"the package index is unreachable: {output.strip()[-300:]}")
    assert proc.returncode == 0, f"{command}\n{output}"


def build_context(tmp_path: Path) -> Path:
    """Lay out the build stage's WORKDIR as its COPY instructions fill it."""
    (workdir,) = [w.rest for w in builder().all("WORKDIR")]
    assert workdir.startswith("/")
    context = tmp_path / "src"
    context.mkdir()
    for sources, destination in copies(builder()):
        for source in sources:
            src = ROOT / os.path.normpath(source)
            dest = context / destination
            files = [src] if src.is_file() else sorted(src.rglob("*"))
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                if not file.is_file() or ignored(relative):
                    continue
                target = (
                    dest / file.name if src.is_file() else dest / file.relative_to(src)
                )
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(file.read_bytes())
    return context


def test_install_steps_work_in_a_fresh_virtualenv(tmp_path) -> None:
    """The image's RUN steps build and install it; its command answers --help."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # `python` in the image is the base image's; here, the interpreter under test.
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    python.chmod(0o755)
    env = {
        **os.environ,
        **builder().arg_defaults(),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PIP_DEFAULT_TIMEOUT": "20",
        "PIP_RETRIES": "2",
    }
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    paths = {"/wheels": tmp_path / "wheels", "/opt/venv": tmp_path / "venv"}

    context = build_context(tmp_path)
    (wheel,) = [r for r in builder().all("RUN") if "pip wheel" in r.rest]
    run_step(wheel.rest, cwd=context, paths=paths, env=env)
    built = sorted(p.name for p in paths["/wheels"].glob("*.whl"))
    assert [n for n in built if n.startswith("flyautoscaler-")], built

    (install,) = [r for r in image().all("RUN") if "--no-index" in r.rest]
    mounts = [f for f in install.flags if f.startswith("--mount=")]
    for mount in mounts:
        options = dict(
            o.split("=", 1) for o in mount.removeprefix("--mount=").split(",")
        )
        assert options["source"] in paths, mount
        assert options["target"] in paths, mount
    run_step(install.rest, cwd=tmp_path, paths=paths, env=env)

    # ENTRYPOINT is found on the image's PATH, whose first entry is the venv.
    (path_env,) = [
        word.removeprefix("PATH=")
        for e in image().all("ENV")
        for word in shlex.split(e.rest)
        if word.startswith("PATH=")
    ]
    first = path_env.split(":")[0]
    prefix = next(p for p in paths if first.startswith(p + "/"))
    command_dir = paths[prefix] / first.removeprefix(prefix + "/")
    (entrypoint,) = image().all("ENTRYPOINT")
    (cmd,) = image().all("CMD")
    program = command_dir / entrypoint.json_args()[0]
    clean = {k: v for k, v in env.items() if not k.startswith("FAS_")}
    for args in ([], cmd.json_args()):
        proc = subprocess.run(  # noqa: S603 - the installed command
            [str(program), *args, "--help"],
            cwd=tmp_path,
            env=clean,
            capture_output=True,
            text=True,
            check=False,
            timeout=STEP_TIMEOUT,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("usage: flyautoscaler"), proc.stdout
    # The virtualenv holds the package and its dependencies, not pip.
    installed = subprocess.run(  # noqa: S603 - the venv's interpreter
        [str(command_dir / "python"), "-c", "import flyautoscaler, pip"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "No module named 'pip'" in installed.stderr, installed.stderr
