"""TemporalCollector against an in-process gRPC WorkflowService.

The server is built from the SDK's own protobuf definitions
(``temporalio.api.workflowservice.v1``) and answers the two calls the SDK makes
for a count: ``GetSystemInfo`` (when connecting) and
``CountWorkflowExecutions``. The SDK's real client (its Rust core) talks to it
over gRPC on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import attrs
import pytest

import flyautoscaler as fas
from flyautoscaler.collectors import RUNNING_FILTER, TemporalCollector
from servers import import_or_skip

grpc = import_or_skip("grpc", "temporal")
service_grpc = import_or_skip(
    "temporalio.api.workflowservice.v1.service_pb2_grpc", "temporal"
)
messages = import_or_skip(
    "temporalio.api.workflowservice.v1.request_response_pb2", "temporal"
)


@attrs.define
class Call:
    """One RPC the fake server received."""

    method: str
    namespace: str = ""
    query: str = ""
    metadata: dict[str, str] = attrs.field(factory=dict)


@attrs.define
class WorkflowService(service_grpc.WorkflowServiceServicer):  # type: ignore[misc]
    """The WorkflowService calls a count needs, with a call log and failures."""

    count: int = 0
    fail_with: tuple[Any, str] | None = None  # (grpc.StatusCode, details)
    hold: threading.Event | None = None  # answer counts only once it is set
    calls: list[Call] = attrs.field(factory=list)

    def GetSystemInfo(self, request, context):  # noqa: N802 - the gRPC method name
        """Answer the SDK's connection check."""
        self.calls.append(Call("GetSystemInfo", metadata=_metadata(context)))
        return messages.GetSystemInfoResponse(server_version="1.99.0")

    def CountWorkflowExecutions(self, request, context):  # noqa: N802 - the gRPC method name
        """Count workflows: the configured count, or the configured failure."""
        self.calls.append(
            Call(
                "CountWorkflowExecutions",
                namespace=request.namespace,
                query=request.query,
                metadata=_metadata(context),
            )
        )
        if self.hold is not None:
            self.hold.wait(timeout=30)
        if self.fail_with is not None:
            context.abort(*self.fail_with)
        return messages.CountWorkflowExecutionsResponse(count=self.count)

    def methods(self) -> list[str]:
        """The names of the calls received, in order."""
        return [call.method for call in self.calls]


def _metadata(context: Any) -> dict[str, str]:
    return dict(context.invocation_metadata())


def _serve(service: WorkflowService, credentials: Any = None) -> tuple[Any, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service_grpc.add_WorkflowServiceServicer_to_server(service, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


@pytest.fixture
def service() -> Iterator[tuple[WorkflowService, str]]:
    """A plain-text WorkflowService on 127.0.0.1; yields it and its address."""
    service = WorkflowService(count=3)
    server, port = _serve(service)
    try:
        yield service, f"127.0.0.1:{port}"
    finally:
        if service.hold is not None:
            service.hold.set()
        server.stop(grace=None).wait(timeout=15)


def counts(service: WorkflowService) -> list[Call]:
    """The CountWorkflowExecutions calls received."""
    return [c for c in service.calls if c.method == "CountWorkflowExecutions"]


def test_counts_running_workflows(service):
    """Without a filter, every running workflow of the namespace is counted."""
    fake, address = service
    with TemporalCollector("workflows", address, "my-ns") as c:
        assert c.collect_metric("my-app") == 3.0
    [call] = counts(fake)
    assert (call.namespace, call.query) == ("my-ns", RUNNING_FILTER)
    assert call.metadata["temporal-namespace"] == "my-ns"
    assert "authorization" not in call.metadata


def test_filter_with_app_name(service):
    """The filter is ANDed to the running filter, with $APP_NAME expanded."""
    fake, address = service
    fake.count = 5
    with TemporalCollector("wf", address, query='TaskQueue="$APP_NAME"') as c:
        assert c.collect_metric("app-a") == 5.0
        assert c.collect_metric("app-b") == 5.0
    assert [call.query for call in counts(fake)] == [
        'ExecutionStatus="Running" AND (TaskQueue="app-a")',
        'ExecutionStatus="Running" AND (TaskQueue="app-b")',
    ]
    assert counts(fake)[0].namespace == "default"


def test_filter_with_listed_variables(service, monkeypatch):
    """Only listed variables expand in the filter; others are sent as written."""
    fake, address = service
    monkeypatch.setenv("TEMPORAL_SECRET_THING", "hunter2")
    query = 'TaskQueue="$APP_NAME-$TIER" AND X="$TEMPORAL_SECRET_THING"'
    with TemporalCollector("wf", address, query=query, variables={"TIER": "gpu"}) as c:
        c.collect_metric("app-a")
    expected = 'TaskQueue="app-a-gpu" AND X="$TEMPORAL_SECRET_THING"'
    assert [call.query for call in counts(fake)] == [
        f'ExecutionStatus="Running" AND ({expected})'
    ]


def test_client_is_reused_until_closed(service):
    """One connection serves many collections; close() drops it."""
    fake, address = service
    c = TemporalCollector("wf", address)
    c.collect_metric("a")
    c.collect_metric("a")
    assert fake.methods() == [
        "GetSystemInfo",
        "CountWorkflowExecutions",
        "CountWorkflowExecutions",
    ]
    c.close()
    c.collect_metric("a")
    assert fake.methods()[-2:] == ["GetSystemInfo", "CountWorkflowExecutions"]
    c.close()


def test_api_key_is_sent_and_never_shown(service):
    """An API key goes as a Bearer header and stays out of errors and repr."""
    fake, address = service
    key = "tmprl-api-key-value"
    fake.fail_with = (grpc.StatusCode.PERMISSION_DENIED, f"key {key} lacks access")
    with (
        TemporalCollector("wf", address, api_key=key, tls=False) as c,
        pytest.raises(fas.MetricCollectionError, match="PERMISSION_DENIED") as info,
    ):
        c.collect_metric("a")
    assert counts(fake)[0].metadata["authorization"] == f"Bearer {key}"
    assert key not in str(info.value)
    assert key not in repr(c)
    assert not info.value.transient


def test_bad_filter_is_a_permanent_error(service):
    """The server's INVALID_ARGUMENT becomes a non-transient error with its text."""
    fake, address = service
    fake.fail_with = (grpc.StatusCode.INVALID_ARGUMENT, "invalid query: bad syntax")
    with (
        TemporalCollector("wf", address, query="((") as c,
        pytest.raises(fas.MetricCollectionError, match="invalid query") as info,
    ):
        c.collect_metric("a")
    assert "INVALID_ARGUMENT" in str(info.value)
    assert not info.value.transient
    assert info.value.collector == "wf"


def test_unreachable_server_fails_fast():
    """A closed port is a transient error, well within the timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    c = TemporalCollector("wf", f"127.0.0.1:{port}", timeout=20)
    started = time.monotonic()
    with pytest.raises(fas.MetricCollectionError, match="connect") as info:
        c.collect_metric("a")
    assert time.monotonic() - started < 10
    assert info.value.transient


def test_slow_server_times_out(service):
    """A count that does not come back in time is a transient timeout."""
    fake, address = service
    fake.hold = threading.Event()
    c = TemporalCollector("wf", address, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(fas.MetricCollectionError, match="no answer within") as info:
        c.collect_metric("a")
    assert time.monotonic() - started < 10
    assert info.value.transient
    fake.hold.set()
    fake.hold = None
    assert c.collect_metric("a") == 3.0  # the same client works afterwards
    c.close()


def test_works_from_async_code(service):
    """Called inside a running event loop, it runs its own loop elsewhere."""
    _, address = service
    c = TemporalCollector("wf", address)

    async def collect() -> float:
        return c.collect_metric("a")

    assert asyncio.run(collect()) == 3.0
    c.close()


def test_usable_from_several_threads(service):
    """Threads share one connection; calls are serialised, none fails."""
    fake, address = service
    c = TemporalCollector("wf", address)
    results: list[float] = []
    threads = [
        threading.Thread(target=lambda: results.append(c.collect_metric("a")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    c.close()
    assert results == [3.0] * 4
    assert fake.methods().count("GetSystemInfo") == 1


def test_unclosed_collector_is_cleaned_up(service):
    """A collector dropped without close() closes its loop (no ResourceWarning)."""
    _, address = service
    c = TemporalCollector("wf", address)
    assert c.collect_metric("a") == 3.0
    del c
    gc.collect()


def test_reconciler_collects_through_it(service):
    """A Reconciler stores the count under the collector's name."""
    _, address = service
    with TemporalCollector("workflows", address) as c:
        reconciler = fas.Reconciler(app_name="my-app", collectors=[c])
        reconciler.collect_metrics()
    assert reconciler.value("workflows") == 3.0


# --- mutual TLS ----------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(  # noqa: S603 - fixed arguments
        [shutil.which("openssl") or "openssl", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


def _certificates(directory: Path) -> dict[str, bytes]:
    """Make a CA, a server certificate for 127.0.0.1 and a client certificate."""
    if shutil.which("openssl") is None:
        message = "openssl not found; install with: apt-get install openssl"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.pem",
        cwd=directory,
    )  # fmt: skip
    # Extensions make X.509 v3 certificates, the only version rustls accepts.
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr",
            cwd=directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", f"{name}.pem",
            "-extfile", f"{name}.ext",
            cwd=directory,
        )  # fmt: skip
    return {
        p.name: p.read_bytes()
        for p in directory.iterdir()
        if p.suffix in {".pem", ".key"}
    }


def test_mutual_tls(tmp_path):
    """With a client certificate the collector connects over mTLS."""
    pem = _certificates(tmp_path)
    credentials = grpc.ssl_server_credentials(
        [(pem["server.key"], pem["server.pem"])],
        root_certificates=pem["ca.pem"],
        require_client_auth=True,
    )
    fake = WorkflowService(count=11)
    server, port = _serve(fake, credentials)
    try:
        with TemporalCollector(
            "wf",
            f"127.0.0.1:{port}",
            tls_cert=pem["client.pem"],
            tls_key=pem["client.key"],
            tls_server_ca=pem["ca.pem"],
        ) as c:
            assert c.collect_metric("a") == 11.0
        with (
            TemporalCollector(
                "wf", f"127.0.0.1:{port}", tls_server_ca=pem["ca.pem"], tls=True
            ) as anonymous,
            pytest.raises(fas.MetricCollectionError),
        ):
            anonymous.collect_metric("a")  # no client certificate: refused
    finally:
        server.stop(grace=None).wait(timeout=15)
    assert counts(fake)[0].query == RUNNING_FILTER


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"address": ""}, "address"),
        ({"namespace": ""}, "namespace"),
        ({"tls_cert": b"-----BEGIN CERTIFICATE-----"}, "tls_cert"),
    ],
)
def test_configuration_errors(kwargs, field):
    """Missing address or namespace, or a certificate without its key, is refused."""
    arguments: dict[str, Any] = {"name": "wf", "address": "localhost:7233", **kwargs}
    with pytest.raises(fas.ConfigError) as info:
        TemporalCollector(**arguments)
    assert info.value.field == field
