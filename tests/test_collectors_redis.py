"""RedisListLengthCollector against a real ``redis-server`` on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

import flyautoscaler as fas
from flyautoscaler.collectors import RedisListLengthCollector
from servers import REDIS_PASSWORD, RedisServer, free_port, import_or_skip

redis = import_or_skip("redis", "redis")

PASSWORD = REDIS_PASSWORD


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Run a real redis-server on 127.0.0.1 (no persistence, a password)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.port
    finally:
        server.stop()


@pytest.fixture
def server(redis_port: int) -> Iterator[redis.Redis]:
    """A client of the test server, on an emptied database."""
    with redis.Redis(
        host="127.0.0.1", port=redis_port, password=PASSWORD, socket_timeout=5
    ) as client:
        client.flushall()
        yield client


def url(port: int, password: str = PASSWORD) -> str:
    """The URL of the test server."""
    return f"redis://:{password}@127.0.0.1:{port}/0"


def test_sums_the_lists(server, redis_port):
    """The value is the summed length of every key's list."""
    server.rpush("rq:queue:default", *range(3))
    server.rpush("rq:queue:high", *range(4))
    with RedisListLengthCollector(
        "jobs", url(redis_port), ["rq:queue:default", "rq:queue:high"]
    ) as c:
        assert c.collect_metric("any") == 7.0
        server.lpop("rq:queue:high")
        assert c.collect_metric("any") == 6.0


def test_app_name_in_keys(server, redis_port):
    """$APP_NAME in a key selects each app's queue."""
    server.rpush("app-a:jobs", "x")
    server.rpush("app-b:jobs", "x", "y")
    with RedisListLengthCollector("jobs", url(redis_port), "${APP_NAME}:jobs") as c:
        assert c.collect_metric("app-a") == 1.0
        assert c.collect_metric("app-b") == 2.0


def test_listed_variables_in_keys(server, redis_port, monkeypatch):
    """Keys expand listed variables only; others are read as written."""
    monkeypatch.setenv("QUEUE", "from-the-environment")
    server.rpush("app-a:high:jobs", "x", "y")
    server.rpush("$QUEUE", "z")
    with RedisListLengthCollector(
        "jobs",
        url(redis_port),
        ["$APP_NAME:${TIER}:jobs", "$QUEUE"],
        variables={"TIER": "high"},
    ) as c:
        assert c.collect_metric("app-a") == 3.0


def test_missing_key_counts_as_empty(server, redis_port):
    """A key that does not exist is an empty queue."""
    with RedisListLengthCollector("jobs", url(redis_port), ["nothing", "here"]) as c:
        assert c.collect_metric("app") == 0.0


def test_celery_priority_queues(server, redis_port):
    """Celery's priority lists (queue, queue\\x06\\x163, ...) are summed."""
    server.rpush("celery", "a")
    server.rpush("celery\x06\x163", "b", "c")
    server.rpush("celery\x06\x166", "d")
    keys = ["celery", "celery\x06\x163", "celery\x06\x166", "celery\x06\x169"]
    with RedisListLengthCollector("jobs", url(redis_port), keys) as c:
        assert c.collect_metric("app") == 4.0


def test_wrong_type_is_a_permanent_error(server, redis_port):
    """A key holding something other than a list is a non-transient error."""
    server.set("not-a-list", "1")
    with (
        RedisListLengthCollector("jobs", url(redis_port), "not-a-list") as c,
        pytest.raises(fas.MetricCollectionError, match="WRONGTYPE") as info,
    ):
        c.collect_metric("app")
    assert not info.value.transient
    assert info.value.collector == "jobs"


def test_wrong_password_is_not_shown(server, redis_port):
    """Refused credentials are a permanent error that does not show them."""
    with (
        RedisListLengthCollector(
            "jobs", url(redis_port, "wrong-password-value"), "q"
        ) as c,
        pytest.raises(
            fas.MetricCollectionError, match="refused the credentials"
        ) as info,
    ):
        c.collect_metric("app")
    assert not info.value.transient
    assert "wrong-password-value" not in str(info.value)
    assert "wrong-password-value" not in repr(c)


def test_redis_down_names_the_server():
    """A closed port gives a transient error naming host:port, not the password."""
    port = free_port()
    c = RedisListLengthCollector("jobs", url(port), "q", connect_timeout=2.0)
    started = time.monotonic()
    with c, pytest.raises(fas.MetricCollectionError) as info:
        c.collect_metric("app")
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port}" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert info.value.transient


def test_read_timeout():
    """A server that accepts but never answers gives a transient timeout error."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accepted: the kernel completes the handshake
        port = listener.getsockname()[1]
        c = RedisListLengthCollector("jobs", url(port), "q", timeout=0.3)
        started = time.monotonic()
        with c, pytest.raises(fas.MetricCollectionError, match="Timeout") as info:
            c.collect_metric("app")
    assert time.monotonic() - started < 10
    assert info.value.transient
    assert f"127.0.0.1:{port}" in str(info.value)


def test_recovers_after_an_error(server, redis_port):
    """After a failure the next collection works again."""
    server.set("k", "1")
    with RedisListLengthCollector("jobs", url(redis_port), "k") as c:
        with pytest.raises(fas.MetricCollectionError):
            c.collect_metric("app")
        server.delete("k")
        server.rpush("k", "a", "b")
        assert c.collect_metric("app") == 2.0


def test_close_is_idempotent_and_reopens(server, redis_port):
    """close() may be called twice; the next collection connects again."""
    server.rpush("q", "a")
    c = RedisListLengthCollector("jobs", url(redis_port), "q")
    assert c.collect_metric("app") == 1.0
    c.close()
    c.close()
    assert c.collect_metric("app") == 1.0
    c.close()


def test_repr_hides_the_url():
    """The URL (which may carry a password) is not in the repr."""
    c = RedisListLengthCollector("jobs", "redis://:pw-secret@db.internal:6380", "q")
    assert "pw-secret" not in repr(c)
    assert c.server == "db.internal:6380"


@pytest.mark.parametrize(
    ("address", "keys", "field"),
    [
        ("http://localhost", "q", "url"),
        ("redis://localhost", [], "keys"),
        ("redis://localhost", ["q", ""], "keys"),
    ],
)
def test_configuration_errors(address, keys, field):
    """A bad URL scheme or an empty key list is refused when built."""
    with pytest.raises(fas.ConfigError) as info:
        RedisListLengthCollector("jobs", address, keys)
    assert info.value.field == field


def test_reconciler_collects_through_it(server, redis_port):
    """A Reconciler stores the queue length under the collector's name."""
    server.rpush("my-app:jobs", "a", "b", "c")
    with RedisListLengthCollector("queue", url(redis_port), "$APP_NAME:jobs") as c:
        reconciler = fas.Reconciler(
            app_name="my-app",
            collectors=[c],
            min_started_machine_n="queue",
        )
        reconciler.collect_metrics()
        assert reconciler.value("queue") == 3.0
