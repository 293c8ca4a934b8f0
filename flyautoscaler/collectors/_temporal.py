"""The Temporal running-workflows collector, on the official ``temporalio`` SDK.

Also its declaration for the command's configuration (``TEMPORAL``): its keys,
variables and credentials, the certificate-and-key check, and how an entry
builds it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import threading
import weakref
from collections.abc import Coroutine, Mapping
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Final, TypeVar

from attrs import define, field

from flyautoscaler._closing import Closing
from flyautoscaler._errors import ConfigError, MetricCollectionError, Scrubber
from flyautoscaler._extras import install_hint
from flyautoscaler._names import check_query_variables, expand_metric_query
from flyautoscaler._settings import CollectorType, Entry, Setting
from flyautoscaler._validation import positive_seconds, require

if TYPE_CHECKING:
    from temporalio.client import Client

__all__ = [
    "DEFAULT_TEMPORAL_TIMEOUT",
    "RUNNING_FILTER",
    "TEMPORAL",
    "TemporalCollector",
]

#: Default bound, in seconds, on one collection (connecting included).
DEFAULT_TEMPORAL_TIMEOUT: Final = 10.0
#: The visibility filter every count starts from, as in the Go original.
RUNNING_FILTER: Final = 'ExecutionStatus="Running"'

_INSTALL_TEMPORAL: Final = install_hint("temporal")
# gRPC statuses after which a later call may succeed.
_TRANSIENT_STATUSES: Final = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELLED"}
)
_T = TypeVar("_T")


def import_temporal() -> ModuleType:
    """Return :mod:`temporalio.client`, or say how to install it.

    Raises:
        ImportError: temporalio is not installed; the message names the extra.
    """
    try:
        return importlib.import_module("temporalio.client")
    except ImportError as exc:
        raise ImportError(
            f"TemporalCollector needs the temporalio SDK: {_INSTALL_TEMPORAL}"
        ) from exc


def _is_deadline(status: str, message: str) -> bool:
    """Return True when an RPC failed because its deadline passed."""
    return status == "DEADLINE_EXCEEDED" or (
        status == "CANCELLED" and "timeout" in message.lower()
    )


@define
class TemporalCollector(Closing):
    r"""The number of running Temporal workflows, per app.

    Counts the workflow executions matching ``ExecutionStatus="Running"``, and
    ``AND (<query>)`` when a *query* is given, with the visibility API's
    ``CountWorkflowExecutions``, exactly as the Go original does. The filter may
    use ``$APP_NAME`` (see :func:`~flyautoscaler.expand_metric_query`), for
    example ``TaskQueue="$APP_NAME"``.

    Needs the ``temporal`` extra (from a checkout: ``pip install '.[temporal]'``).

    The SDK is asynchronous: the collector owns a private event loop, runs each
    collection in it (from a helper thread when the caller is itself inside a
    running loop) and bounds it by *timeout*, connecting included. The client
    connects on first use and is reused, always in the loop it was connected
    in, as the SDK requires; calls on one collector are serialised.
    :meth:`close` (or leaving a ``with`` block) drops the connection and closes
    the loop; a later collection opens new ones.

    Args:
        name: The metric's name, as count expressions refer to it.
        address: The frontend's ``host:port``, such as ``localhost:7233`` or
            ``my-ns.a1b2c.tmprl.cloud:7233``.
        namespace: The namespace to count in.
        query: Extra visibility filter (``WorkflowType="report"``); empty
            counts every running workflow.
        api_key: Temporal Cloud API key, sent as ``Authorization: Bearer ...``.
            Never logged or shown.
        tls_cert: PEM client certificate for mTLS (with *tls_key*).
        tls_key: PEM private key of *tls_cert*. Never shown.
        tls_server_ca: PEM CA certificate to trust for the server, when it is
            not in the system's store.
        tls: Use TLS. ``None`` (the default) means: when an API key or a
            client certificate is given.
        timeout: Seconds one collection may take, connecting included.
        variables: Other variables the query may use, by name, with their
            values; any other ``$VAR`` stays as written. Never shown.

    Raises:
        ImportError: temporalio is not installed.
        ConfigError: The name, address or namespace is empty, only one of
            *tls_cert* and *tls_key* is given, the timeout is not positive,
            or a variable's name is not a name.
    """

    name: str
    address: str
    namespace: str = "default"
    query: str = ""
    api_key: str = field(default="", repr=False, kw_only=True)
    tls_cert: bytes = field(default=b"", repr=False, kw_only=True)
    tls_key: bytes = field(default=b"", repr=False, kw_only=True)
    tls_server_ca: bytes = field(default=b"", repr=False, kw_only=True)
    tls: bool | None = field(default=None, kw_only=True)
    timeout: float = field(
        default=DEFAULT_TEMPORAL_TIMEOUT, converter=positive_seconds, kw_only=True
    )
    variables: Mapping[str, str] = field(
        factory=dict, converter=check_query_variables, repr=False, kw_only=True
    )
    _client: Client | None = field(default=None, init=False, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(
        default=None, init=False, repr=False
    )
    _close_loop: weakref.finalize[[], TemporalCollector] | None = field(
        default=None, init=False, repr=False
    )
    _lock: threading.Lock = field(factory=threading.Lock, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        import_temporal()
        for attribute in ("name", "address", "namespace"):
            require(
                getattr(self, attribute),
                f"temporal {attribute} required",
                field=attribute,
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError(
                "tls_cert and tls_key go together: give both or neither",
                field="tls_cert",
            )

    def filter_for(self, app_name: str) -> str:
        """Return the visibility filter counted for *app_name*."""
        text = RUNNING_FILTER
        if self.query:
            text += f" AND ({self.query})"
        return expand_metric_query(text, app_name, variables=self.variables)

    def collect_metric(self, app_name: str) -> float:
        """Return the number of running workflows matching the filter.

        Args:
            app_name: The app being reconciled (replaces ``$APP_NAME``).

        Returns:
            The count.

        Raises:
            MetricCollectionError: The server cannot be reached or did not
                answer within ``timeout`` (transient), or refused the call, for
                example a bad filter or credentials (not transient).
        """
        rpc_module = importlib.import_module("temporalio.service")
        query = self.filter_for(app_name)
        with self._lock:
            try:
                count = self._run(self._count(query))
            except TimeoutError:
                raise MetricCollectionError(
                    self.name,
                    f"temporal at {self.address}: no answer within {self.timeout} s",
                ) from None
            except rpc_module.RPCError as exc:
                status = getattr(exc.status, "name", str(exc.status))
                text = f"{status}: {self._scrubber(exc.message)}"
                if _is_deadline(status, exc.message):  # the RPC's own deadline
                    text = f"no answer within {self.timeout} s ({text})"
                raise MetricCollectionError(
                    self.name,
                    f"temporal at {self.address}: {text} (filter {query!r})",
                    transient=status in _TRANSIENT_STATUSES,
                ) from None
            except RuntimeError as exc:  # the SDK's "Failed client connect: ..."
                raise MetricCollectionError(
                    self.name,
                    f"temporal at {self.address}: {self._scrubber(str(exc))}",
                ) from None
        return float(count)

    def close(self) -> None:
        """Drop the connection and close the loop; both reopen on the next call."""
        with self._lock:
            self._client = None
            self._loop = None
            close_loop, self._close_loop = self._close_loop, None
        if close_loop is not None:
            close_loop()

    def _run(self, coroutine: Coroutine[object, object, _T]) -> _T:
        """Run *coroutine* in the collector's loop (the caller holds the lock)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            # Closes the loop even when close() is never called.
            self._close_loop = weakref.finalize(self, self._loop.close)
        run = self._loop.run_until_complete
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run(coroutine)
        # Called from async code: this thread's loop is busy, use another thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(run, coroutine).result()

    async def _count(self, query: str) -> int:
        async def count() -> int:
            client = await self._connected()
            result = await client.count_workflows(
                query, rpc_timeout=timedelta(seconds=self.timeout)
            )
            return result.count

        return await asyncio.wait_for(count(), self.timeout)

    async def _connected(self) -> Client:
        if self._client is None:
            client_module = import_temporal()
            use_tls = (
                self.tls
                if self.tls is not None
                else bool(self.api_key or self.tls_cert)
            )
            tls: object = use_tls
            if use_tls and (self.tls_cert or self.tls_server_ca):
                tls = client_module.TLSConfig(
                    server_root_ca_cert=self.tls_server_ca or None,
                    client_cert=self.tls_cert or None,
                    client_private_key=self.tls_key or None,
                )
            self._client = await client_module.Client.connect(
                self.address,
                namespace=self.namespace,
                api_key=self.api_key or None,
                tls=tls,
            )
        return self._client

    @property
    def _scrubber(self) -> Scrubber:
        """Removes the API key."""
        return Scrubber([self.api_key], min_length=4)


def _check(entry: Entry) -> None:
    if bool(entry.text("cert_data")) != bool(entry.text("key_data")):
        raise ConfigError(
            "temporal cert data and key data go together: give both or neither",
            field="cert_data",
        )


def _build(entry: Entry, variables: Mapping[str, str]) -> TemporalCollector:
    return TemporalCollector(
        entry.text("metric_name"),
        entry.text("address"),
        entry.text("namespace") or "default",
        entry.text("query"),
        api_key=entry.text("api_key"),
        tls_cert=entry.text("cert_data").encode(),
        tls_key=entry.text("key_data").encode(),
        variables=variables,
    )


#: The ``temporal`` entries of the command's configuration. The certificate
#: and key are read from ``TEMPORAL_TLS_*`` first, then ``FAS_TEMPORAL_*``,
#: as in the Go original; the certificate is not shown, but is no credential.
TEMPORAL: Final = CollectorType(
    name="temporal",
    enabled_by="FAS_TEMPORAL_ADDRESS",
    settings=(
        Setting(
            "address",
            "address",
            env=("FAS_TEMPORAL_ADDRESS",),
            required="temporal address required",
        ),
        Setting("namespace", "namespace", env=("FAS_TEMPORAL_NAMESPACE",)),
        Setting("metric-name", "metric_name", env=("FAS_TEMPORAL_METRIC_NAME",)),
        Setting("query", "query", "query", env=("FAS_TEMPORAL_QUERY",)),
        Setting(
            "api-key",
            "api_key",
            "secret",
            env=("FAS_TEMPORAL_API_KEY",),
            credential=True,
            header=True,
        ),
        Setting(
            "cert-data",
            "cert_data",
            "secret",
            env=("TEMPORAL_TLS_CERT_DATA", "FAS_TEMPORAL_CERT_DATA"),
        ),
        Setting(
            "key-data",
            "key_data",
            "secret",
            env=("TEMPORAL_TLS_KEY_DATA", "FAS_TEMPORAL_KEY_DATA"),
            credential=True,
        ),
    ),
    build=_build,
    check=_check,
)
