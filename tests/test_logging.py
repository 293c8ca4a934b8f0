"""Log lines: readable under a plain handler, structured under the JSON formatter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

import flyautoscaler as fas
from factories import machine
from flyautoscaler.logging import JSONFormatter
from flyautoscaler.testing import FakeFlapsClient

TOKEN = "FlyV1 fm2_lJPECAAAAAAAAMQQsecretsecretsecret"  # noqa: S105 - a fake token


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    """A handler with logging's default format on the flyautoscaler logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    root = logging.getLogger("flyautoscaler")
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream, handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def lines(stream: io.StringIO) -> list[str]:
    """The lines written so far."""
    return stream.getvalue().splitlines()


def test_a_plain_line_says_what_happened_to_which_machine_and_why(captured):
    """basicConfig's format: the event, the app, the Machine and the error."""
    stream, _ = captured
    client = FakeFlapsClient([machine("m1", "stopped")])
    client.fail("start", times=1)
    fas.Reconciler(
        client=client, app_name="my-app", min_started_machine_n="1"
    ).reconcile()
    [failed] = [line for line in lines(stream) if "machine.start_failed" in line]
    assert failed == (
        "ERROR:flyautoscaler.reconciler:machine.start_failed app=my-app "
        'machine_id=m1 error="FlapsError: start: 500: injected failure"'
    )


def test_records_keep_the_event_and_fields(caplog: pytest.LogCaptureFixture):
    """record.msg is the bare event; each field is an attribute of the record."""
    caplog.set_level(logging.INFO, logger="flyautoscaler")
    client = FakeFlapsClient([machine("m1", "stopped")])
    fas.Reconciler(
        client=client, app_name="my-app", min_started_machine_n="1"
    ).reconcile()
    [record] = [r for r in caplog.records if r.msg == "machine.start"]
    assert record.event == "machine.start"  # type: ignore[attr-defined]
    assert record.machine_id == "m1"  # type: ignore[attr-defined]
    assert record.getMessage().startswith("machine.start app=my-app machine_id=m1")


def test_a_pass_that_does_nothing_logs_at_debug_only(
    caplog: pytest.LogCaptureFixture,
):
    """reconcile.pass is INFO when the pass acted (or failed), DEBUG otherwise."""
    caplog.set_level(logging.DEBUG, logger="flyautoscaler")
    client = FakeFlapsClient([machine("m1", "stopped")])
    r = fas.Reconciler(client=client, app_name="my-app", min_started_machine_n="1")
    r.reconcile()  # starts m1
    r.reconcile()  # nothing to do
    client.fail("start", times=1)
    r.min_started_machine_n = "2"
    client.launch(
        fas.LaunchMachineInput(config=fas.MachineConfig(image="x"), skip_launch=True)
    )
    r.reconcile()  # a start fails
    levels = [rec.levelname for rec in caplog.records if rec.msg == "reconcile.pass"]
    assert levels == ["INFO", "DEBUG", "INFO"]
    first = next(rec for rec in caplog.records if rec.msg == "reconcile.pass")
    assert first.actions == {  # type: ignore[attr-defined]
        "created": 0,
        "destroyed": 0,
        "started": 1,
        "stopped": 0,
        "failed": 0,
    }


def test_plain_lines_hide_credentials(captured):
    """A token in a field never reaches the line."""
    stream, _ = captured
    from flyautoscaler._log import get_logger  # noqa: PLC0415 - the private seam

    get_logger("flyautoscaler.test").error(
        "some.event", extra={"app": "a", "error": f"401 with {TOKEN}"}
    )
    [line] = lines(stream)
    assert "secretsecret" not in line
    assert line.startswith("ERROR:flyautoscaler.test:some.event app=a error=")


def test_json_formatter_is_public_and_keeps_the_fields():
    """flyautoscaler.logging.JSONFormatter: the bare event, fields, no secrets."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter(secrets=["hunter22"]))
    logger = logging.getLogger("flyautoscaler")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        client = FakeFlapsClient([machine("m1", "stopped")], app_name="hunter22-app")
        fas.Reconciler(
            client=client, app_name="hunter22-app", min_started_machine_n="1"
        ).reconcile()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    start = next(e for e in entries if e["event"] == "machine.start")
    assert start["machine_id"] == "m1"
    assert start["level"] == "INFO"
    assert start["logger"] == "flyautoscaler.reconciler"
    assert "hunter22" not in stream.getvalue()
