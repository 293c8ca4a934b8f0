"""The Prometheus instant-query collectors (``/api/v1/query``), and their declaration.

:class:`PrometheusCollector` gives one value per app,
:class:`PrometheusMachineCollector` one value per Machine (read from the
``instance`` label). Both ask the same way (:class:`_InstantQuery`) and
differ only in how they read the result. They send through the package's
HTTP machinery (:class:`~flyautoscaler._http.Sender`: the ``(connect,
read)`` timeout, the session, failures mapped to
:class:`PrometheusQueryError`), with no retry: an instant query is cheap to
ask again, and the pool asks again on the next tick anyway, so a retry
inside the pass would only hold the pass longer. The ``PROMETHEUS``
declaration tells the command's configuration its keys and variables.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Final, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from attrs import field, frozen

from flyautoscaler._errors import (
    ConfigError,
    MetricCollectionError,
    Scrubber,
    redact,
)
from flyautoscaler._http import GivenSession, RetryPolicy, Sender
from flyautoscaler._log import get_logger
from flyautoscaler._names import check_query_variables, expand_metric_query
from flyautoscaler._settings import CollectorType, Entry, Setting
from flyautoscaler._validation import check_header_value, require, timeout_pair

__all__ = [
    "DEFAULT_PROMETHEUS_TIMEOUT",
    "PROMETHEUS",
    "PrometheusCollector",
    "PrometheusMachineCollector",
    "PrometheusQueryError",
]

logger = get_logger("flyautoscaler.collectors")

#: Default (connect, read) timeout of a query, in seconds.
DEFAULT_PROMETHEUS_TIMEOUT: Final = (5.0, 15.0)

# Statuses on which the Go client (and so we) retry a POST as a GET.
_GET_FALLBACK: Final = frozenset({405, 501})
# Error types that a later query may not see again.
_TRANSIENT_TYPES: Final = frozenset(
    {"timeout", "canceled", "unavailable", "server_error", "connection", "internal"}
)
_MAX_TEXT: Final = 300
# Series a "several series" error names.
_SHOWN_SERIES: Final = 3
# One attempt: see the module's docstring.
_NO_RETRY: Final = RetryPolicy(max_attempts=1)
# Notes a successful answer may carry: body key, log level, log event.
_NOTES: Final = (
    ("warnings", logging.WARNING, "collector.prometheus.warnings"),
    ("infos", logging.INFO, "collector.prometheus.infos"),
)


class PrometheusQueryError(MetricCollectionError):
    """A Prometheus query failed; carries what the server said.

    Args:
        collector: The collector's ``name``.
        message: What went wrong (redacted; never carries the token).
        error_type: Prometheus' ``errorType`` (``bad_data``, ``execution``,
            ``timeout``, ``unavailable``, ...), or ours: ``server_error`` /
            ``client_error`` for a non-JSON HTTP error, ``bad_response`` for a
            body that is not a Prometheus answer, ``connection`` and ``timeout``
            when there was no answer, ``empty_result`` and
            ``unexpected_result_type``.
        error: The server's ``error`` text, when it sent one (redacted).
        status_code: The HTTP status, or ``None`` when there was no answer.
        transient: Whether a later query may succeed.
    """

    def __init__(  # noqa: PLR0913 - the error's fields
        self,
        collector: str,
        message: str,
        *,
        error_type: str,
        error: str = "",
        status_code: int | None = None,
        transient: bool = True,
    ) -> None:
        super().__init__(collector, message, transient=transient)
        self.error_type = error_type
        self.error = redact(error)
        self.status_code = status_code


class _Answer(Exception):  # noqa: N818 - not an error: an answer to read
    """Carries a non-2xx answer out of :meth:`Sender.send`, to be read as any."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _display_address(address: str) -> str:
    """Return *address* without any ``user:password@`` part or query string."""
    parts = urlsplit(address)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@frozen
class _Result:
    """A successful answer's ``data``: its result type, its result, its status.

    ``url`` is the endpoint that answered, for messages.
    """

    result_type: object
    result: object
    status: int
    url: str


@frozen
class _InstantQuery:
    """What both Prometheus collectors share: the server, the query, how to ask.

    Expands the query for the app, sends it, and checks the answer up to its
    ``data`` (:meth:`_ask_for`); the subclasses read the result.
    """

    name: str
    address: str = field(repr=lambda address: repr(_display_address(address)))
    query: str
    token: str = field(default="", repr=False)
    timeout: tuple[float, float] = field(
        default=DEFAULT_PROMETHEUS_TIMEOUT, converter=timeout_pair, kw_only=True
    )
    headers: Mapping[str, str] = field(factory=dict, repr=False, kw_only=True)
    session: requests.Session | None = field(default=None, repr=False, kw_only=True)
    clock: Callable[[], float] = field(default=time.time, repr=False, kw_only=True)
    variables: Mapping[str, str] = field(
        factory=dict, converter=check_query_variables, repr=False, kw_only=True
    )

    def __attrs_post_init__(self) -> None:
        require(self.name, "collector name required", field="name")
        check_header_value(self.token, "prometheus token", field="token")
        if urlsplit(self.address).scheme not in {"http", "https"}:
            raise ConfigError(
                f"prometheus address must be an http(s) URL, got "
                f"{_display_address(self.address)!r}",
                field="address",
            )
        if not self.query.strip():
            raise ConfigError("prometheus query required", field="query")

    @property
    def url(self) -> str:
        """The query endpoint, ``{address}/api/v1/query``."""
        return self._endpoint("query")

    @property
    def shown_address(self) -> str:
        """The address as messages show it: without credentials or query string."""
        return _display_address(self.address)

    def _endpoint(self, name: str) -> str:
        """Return the API endpoint *name* (``query``, ``query_range``)."""
        return f"{self.address.rstrip('/')}/api/v1/{name}"

    def _ask_for(self, app_name: str) -> _Result:
        """Run the query for *app_name* now; return the answer's data.

        Raises:
            PrometheusQueryError: No answer in time, an error answer, or one
                without data.
        """
        return self._run(
            app_name, self.url, {"time": f"{self.clock():.3f}"}, self.timeout
        )

    def _run(
        self,
        app_name: str,
        url: str,
        params: Mapping[str, str],
        timeout: tuple[float, float],
    ) -> _Result:
        """Send the query, expanded for *app_name*, with *params* to *url*.

        A form ``POST``; on 405 or 501 the same as a ``GET``.

        Returns:
            The answer's data.

        Raises:
            PrometheusQueryError: No answer in time, an error answer, or one
                without data.
        """
        query = expand_metric_query(self.query, app_name, variables=self.variables)
        body = urlencode({"query": query, **params})
        headers = self._request_headers()
        form = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        with contextlib.ExitStack() as stack:
            session = (
                self.session
                if self.session is not None
                else stack.enter_context(requests.Session())
            )
            sender = Sender(
                sessions=GivenSession(session),
                timeout=timeout,
                retry=_NO_RETRY,
                sleep=time.sleep,
                clock=time.monotonic,
            )
            response = self._send(sender, "POST", url, form, body)
            if response.status_code in _GET_FALLBACK:
                response = self._send(sender, "GET", f"{url}?{body}", headers, None)
        return self._read(response, app_name, url)

    def _vector(self, result: _Result, wanted: str) -> list[object]:
        """Return the samples of a vector *result*.

        Raises:
            PrometheusQueryError: The result is not a vector (*wanted* says
                what is), or not a list.
        """
        return self._series(result, "vector", wanted)

    def _series(self, result: _Result, result_type: str, wanted: str) -> list[object]:
        """Return the list a *result_type* (vector or matrix) *result* holds.

        Raises:
            PrometheusQueryError: The result is of another type (*wanted* says
                what is), or not a list.
        """
        if result.result_type != result_type:
            raise self._error(
                f"unexpected prometheus result type {result.result_type!r} "
                f"(want {wanted})",
                error_type="unexpected_result_type",
                status_code=result.status,
                transient=False,
                url=result.url,
            )
        if not isinstance(result.result, list):
            raise self._error(
                f"{result_type} result is not a list",
                error_type="bad_response",
                status_code=result.status,
                url=result.url,
            )
        return result.result

    # --- request ----------------------------------------------------------------

    def _request_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", **self.headers}
        if self.token.startswith("Fly"):
            headers["Authorization"] = self.token
        elif self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _send(
        self,
        sender: Sender,
        method: str,
        url: str,
        headers: dict[str, str],
        body: str | None,
    ) -> requests.Response:
        """Send one request; return its answer, whatever its status."""
        try:
            return sender.send(
                method,
                url,
                headers=headers,
                body=body,
                idempotent=True,
                follow_redirects=True,
                response_error=_Answer,
                transport_error=functools.partial(
                    self._unanswered, url=url, timeout=sender.timeout
                ),
            )
        except _Answer as answer:  # not a 2xx: read like any other answer
            return answer.response
        except PrometheusQueryError as exc:
            raise exc from None  # the requests exception says no more

    def _unanswered(
        self,
        exc: requests.RequestException,
        _sent: bool,  # noqa: FBT001 - the Sender's TransportError signature
        *,
        url: str,
        timeout: tuple[float, float],
    ) -> PrometheusQueryError:
        """Return the error for a request to *url* that got no answer."""
        if isinstance(exc, requests.Timeout):
            return self._error(
                f"no answer from {_display_address(self.address)} within "
                f"{timeout} s (connect, read): {type(exc).__name__}",
                error_type="timeout",
                url=url,
            )
        return self._error(
            f"cannot reach {_display_address(self.address)}: "
            f"{type(exc).__name__}: {self._shown(str(exc))}",
            error_type="connection",
            url=url,
        )

    # --- response ---------------------------------------------------------------

    def _read(self, response: requests.Response, app_name: str, url: str) -> _Result:
        status = response.status_code
        text = response.text
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            if status // 100 != 2:
                kind = "server_error" if status >= 500 else "client_error"
                raise self._error(
                    f"HTTP {status}: {self._shown(text)}",
                    error_type=kind,
                    status_code=status,
                    url=url,
                    transient=kind == "server_error" or status == 429,
                )
            raise self._error(
                f"HTTP {status}: not a Prometheus API answer: {self._shown(text)}",
                error_type="bad_response",
                status_code=status,
                url=url,
            )
        self._log_warnings(body, app_name)
        if body.get("status") != "success":
            error_type = str(body.get("errorType") or "unknown")
            error = self._shown(str(body.get("error") or ""))
            raise self._error(
                f"HTTP {status}: {error_type}: {error}",
                error_type=error_type,
                error=error,
                status_code=status,
                url=url,
                transient=error_type in _TRANSIENT_TYPES
                or status == 429
                or status >= 500,
            )
        if status // 100 != 2:
            raise self._error(
                f"HTTP {status} with a success body",
                error_type="bad_response",
                status_code=status,
                url=url,
            )
        data = body.get("data")
        if not isinstance(data, dict):
            raise self._error(
                "answer without data",
                error_type="bad_response",
                status_code=status,
                url=url,
            )
        return _Result(data.get("resultType"), data.get("result"), status, url)

    def _sample(self, value: object, result: _Result) -> float:
        """Parse a ``[timestamp, "value"]`` pair of *result*."""
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], str):
            try:
                return float(value[1])
            except ValueError:
                pass
        raise self._malformed(value, result)

    def _malformed(self, value: object, result: _Result) -> PrometheusQueryError:
        """Return the error for a part of *result* that is not as documented."""
        return self._error(
            f"malformed sample {self._shown(json.dumps(value))}",
            error_type="bad_response",
            status_code=result.status,
            url=result.url,
        )

    def _log_warnings(self, body: dict[str, object], app_name: str) -> None:
        for key, level, event in _NOTES:
            notes = body.get(key)
            if isinstance(notes, list) and notes:
                logger.log(
                    level,
                    event,
                    extra={
                        "app": app_name,
                        "collector": self.name,
                        key: [self._shown(str(note)) for note in notes],
                    },
                )

    # --- errors -----------------------------------------------------------------

    def _shown(self, text: str) -> str:
        """Return what a message may show of *text*: scrubbed and truncated.

        The token and the header values are removed (then what
        :func:`~flyautoscaler._errors.redact` finds).
        """
        secrets = [self.token, *self.headers.values()]
        if self.token.startswith("Fly"):
            secrets.append(self.token.removeprefix("FlyV1").strip())
        text = Scrubber(secrets, min_length=4)(text).strip()
        if len(text) > _MAX_TEXT:
            text = text[:_MAX_TEXT] + f"... ({len(text) - _MAX_TEXT} more characters)"
        return text

    def _error(  # noqa: PLR0913 - the error's fields
        self,
        message: str,
        *,
        error_type: str,
        error: str = "",
        status_code: int | None = None,
        transient: bool = True,
        url: str | None = None,
    ) -> PrometheusQueryError:
        """Return the error for *message* at *url* (default: the query's endpoint)."""
        where = _display_address(self.url if url is None else url)
        return PrometheusQueryError(
            self.name,
            f"prometheus query at {where}: {message}",
            error_type=error_type,
            error=error,
            status_code=status_code,
            transient=transient,
        )


@frozen
class PrometheusCollector(_InstantQuery):
    r"""The value of a PromQL (or MetricsQL) instant query, per app.

    Every call expands the query for the app (``$APP_NAME``, see
    :func:`~flyautoscaler.expand_metric_query`) and sends it to
    ``{address}/api/v1/query`` as a form ``POST`` with ``query`` and ``time``,
    falling back to ``GET`` when the server answers 405 or 501. A vector result
    gives its first sample's value (a ``collector.prometheus.multiple_series``
    warning is logged when there are several series); a scalar result gives its
    value; ``NaN`` and ``±Inf`` are returned as such.

    Args:
        name: The metric's name, as count expressions refer to it.
        address: The server's base URL, such as
            ``https://api.fly.io/prometheus/my-org`` or ``http://127.0.0.1:9090``.
        query: The query; ``$APP_NAME`` becomes the app being reconciled.
        token: Credential. One starting with ``Fly`` (``FlyV1 fm2_...``) is sent
            as the whole ``Authorization`` header; any other is sent as
            ``Bearer <token>``; empty sends none. Never logged or shown.
        variables: Other variables the query may use, by name, with their
            values (``{"REGION": "iad"}`` makes ``$REGION`` ``iad``); any
            other ``$VAR`` is sent as written. Never shown.
        timeout: (connect, read) timeout in seconds for every request, or one
            number for both.
        default: Value returned when the result is empty; ``None`` (the
            default) makes an empty result an error.
        headers: Extra request headers (for example a tenant id). Never shown.
        session: A :class:`requests.Session` to send with (connection reuse,
            client certificates, a CA bundle, proxies). You own it and close it;
            share it between threads only if your session allows that. Without
            one, each query uses a fresh session that is closed afterwards.
        clock: Returns the query's evaluation time in Unix seconds.

    Raises:
        ConfigError: The address is not an http(s) URL, or the query or name is
            empty, a timeout is not positive, the token has a character no
            HTTP header can carry, or a variable's name is not a name.
    """

    default: float | None = field(default=None, kw_only=True)

    def collect_metric(self, app_name: str) -> float:
        """Run the query for *app_name* and return its value.

        Args:
            app_name: The app being reconciled (replaces ``$APP_NAME``).

        Returns:
            The first sample's value (vector) or the value (scalar).

        Raises:
            PrometheusQueryError: The server did not answer in time, answered
                with an error, or the result is empty (without a ``default``)
                or neither a vector nor a scalar.
        """
        result = self._ask_for(app_name)
        if result.result_type == "scalar":
            return self._sample(result.result, result)
        samples = self._vector(result, "a vector or a scalar")
        if not samples:
            if self.default is not None:
                return self.default
            raise self._error(
                "empty prometheus result",
                error_type="empty_result",
                status_code=result.status,
                url=result.url,
            )
        if len(samples) > 1:
            logger.warning(
                "collector.prometheus.multiple_series",
                extra={
                    "app": app_name,
                    "collector": self.name,
                    "series": len(samples),
                },
            )
        first = samples[0]
        return self._sample(
            first.get("value") if isinstance(first, dict) else None, result
        )

    def query_range(
        self,
        app_name: str,
        start: float,
        end: float,
        step: float,
        *,
        timeout: float | tuple[float, float] | None = None,
    ) -> list[tuple[float, float]]:
        """Run the query for *app_name* over a span of time; return its points.

        The query is expanded and sent as :meth:`collect_metric` sends it (the
        same form ``POST`` with the ``GET`` fallback, authorization and
        errors), to ``{address}/api/v1/query_range`` with ``start``, ``end``
        and ``step`` in seconds (to the millisecond). The server evaluates the
        query at ``start``, ``start + step``, ... up to ``end``: each point is
        what :meth:`collect_metric` would have got at that time, and a time
        without a point is one where the query had no value. Prometheus
        refuses more than 11,000 points per series in one query; asking for
        fewer is the caller's job.

        Args:
            app_name: The app (replaces ``$APP_NAME``).
            start: The first evaluation time, in Unix seconds.
            end: The last one.
            step: Seconds between two evaluations, more than 0.
            timeout: (connect, read) timeout in seconds, or one number for
                both; default: the collector's.

        Returns:
            The series' ``(time, value)`` points in the server's order (by
            time); empty when the query has no series in the span.

        Raises:
            PrometheusQueryError: As :meth:`collect_metric`; the result is not
                a matrix (``unexpected_result_type``), or it holds several
                series (``multiple_series``): a replay cannot know which one
                an instant query would have taken first at each time.
                Neither is transient.
            ConfigError: *timeout* is not positive seconds.
        """
        params = {
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step:.3f}",
        }
        pair = self.timeout if timeout is None else timeout_pair(timeout)
        url = self._endpoint("query_range")
        result = self._run(app_name, url, params, pair)
        series = self._series(result, "matrix", "a matrix")
        if len(series) > 1:
            raise self._several(series, result)
        if not series:
            return []
        first = series[0]
        values = first.get("values") if isinstance(first, dict) else None
        if not isinstance(values, list):
            raise self._malformed(first, result)
        points: list[tuple[float, float]] = []
        for point in values:
            if not (
                isinstance(point, list)
                and len(point) == 2
                and isinstance(point[0], int | float)
                and isinstance(point[1], str)
            ):
                raise self._malformed(point, result)
            try:
                points.append((float(point[0]), float(point[1])))
            except ValueError:
                raise self._malformed(point, result) from None
        return points

    def _several(self, series: list[object], result: _Result) -> PrometheusQueryError:
        """Return the error for a range result with more than one series."""
        shown = [
            _labels(s.get("metric"))
            for s in series[:_SHOWN_SERIES]
            if isinstance(s, dict)
        ]
        extra = len(series) - len(shown)
        more = f" and {extra} more" if extra > 0 else ""
        return self._error(
            f"the query returned {len(series)} series ({', '.join(shown)}{more}), "
            "want at most one: aggregate it, for example with sum(...) or max(...) "
            "(an instant query would take the first one and log "
            "collector.prometheus.multiple_series)",
            error_type="multiple_series",
            status_code=result.status,
            transient=False,
            url=result.url,
        )


def _labels(metric: object) -> str:
    """Return a series' labels as PromQL writes them: ``{app="a",job="x"}``."""
    if not isinstance(metric, dict):
        return "{}"
    pairs = ",".join(f"{k}={json.dumps(str(v))}" for k, v in sorted(metric.items()))
    return "{" + pairs + "}"


#: The label that names a sample's Machine (Fly's convention).
_MACHINE_LABEL: Final = "instance"


@frozen
class PrometheusMachineCollector(_InstantQuery):
    r"""One value per Machine of an app, from a PromQL instant query.

    A :class:`~flyautoscaler.MachineMetricCollector`: give it to
    :attr:`Reconciler.stop_metric_collector
    <flyautoscaler.Reconciler.stop_metric_collector>` to stop the Machines
    with the lowest values first, such as
    ``sum by (instance) (fly_app_concurrency{app="$APP_NAME"})``.

    The query is sent exactly as :class:`PrometheusCollector` sends it (same
    request, ``$APP_NAME`` and ``variables`` expansion, authorization,
    timeouts, errors as :class:`PrometheusQueryError`). The result must be a
    vector; each of its samples is one Machine's value, the Machine's id
    being the sample's ``instance`` label, as in Fly's own metrics.

    - A sample without an ``instance`` label (or with an empty one) is
      ignored; a ``collector.prometheus.unlabelled_series`` warning gives
      their number.
    - A ``NaN``, ``+Inf`` or ``-Inf`` value is dropped: that Machine has no
      value, and is ranked after every Machine with one.
    - Several samples with the same ``instance``: the **highest** value is
      kept, so a Machine busy in any of its series is not taken for idle,
      whatever order the server answers in; a
      ``collector.prometheus.duplicate_instances`` warning names them
      (aggregate with ``max by (instance)`` or ``sum by (instance)`` to
      choose).
    - An empty vector gives an empty mapping (no Machine has a value).

    Args:
        name: The metric's name, for logs and explanations.
        address: The server's base URL, as for :class:`PrometheusCollector`.
        query: The query; ``$APP_NAME`` becomes the app being reconciled.
        token: Credential, sent as :class:`PrometheusCollector` sends it.
            Never logged or shown.
        timeout: As for :class:`PrometheusCollector`; so are ``headers``,
            ``session``, ``clock`` and ``variables``.

    Raises:
        ConfigError: As :class:`PrometheusCollector`.
    """

    def collect_machine_metrics(self, app_name: str) -> dict[str, float]:
        """Run the query for *app_name*; return each Machine's value, by id.

        Args:
            app_name: The app being reconciled (replaces ``$APP_NAME``).

        Returns:
            ``{machine_id: value}``, finite values only.

        Raises:
            PrometheusQueryError: The server did not answer in time, answered
                with an error, or the result is not a vector (a scalar, a
                matrix or a string: ``unexpected_result_type``, not transient).
        """
        result = self._ask_for(app_name)
        samples = self._vector(result, "a vector, one sample per Machine")
        values: dict[str, float] = {}
        unlabelled = 0
        duplicates: set[str] = set()
        for sample in samples:
            if not isinstance(sample, dict):
                raise self._malformed(sample, result)
            labels = sample.get("metric")
            machine = labels.get(_MACHINE_LABEL) if isinstance(labels, dict) else None
            if not isinstance(machine, str) or not machine:
                unlabelled += 1
                continue
            value = self._sample(sample.get("value"), result)
            if not math.isfinite(value):
                continue
            if machine in values:
                duplicates.add(machine)
                value = max(value, values[machine])
            values[machine] = value
        self._log_dropped(app_name, unlabelled, duplicates)
        return values

    def _log_dropped(
        self, app_name: str, unlabelled: int, duplicates: set[str]
    ) -> None:
        """Log the samples not read as given: unlabelled, or one of several."""
        where = {"app": app_name, "collector": self.name}
        if unlabelled:
            logger.warning(
                "collector.prometheus.unlabelled_series",
                extra={**where, "series": unlabelled, "label": _MACHINE_LABEL},
            )
        if duplicates:
            logger.warning(
                "collector.prometheus.duplicate_instances",
                extra={**where, "instances": sorted(duplicates)},
            )


_Query = TypeVar("_Query", bound=_InstantQuery)


def _builder(kind: type[_Query]) -> Callable[[Entry, Mapping[str, str]], _Query]:
    """Return what builds a *kind* from a checked entry and the query's variables."""

    def build(entry: Entry, variables: Mapping[str, str]) -> _Query:
        return kind(
            entry.text("metric_name"),
            entry.text("address"),
            entry.text("query"),
            entry.text("token"),
            variables=variables,
        )

    return build


#: The ``prometheus`` entries of the command's configuration.
PROMETHEUS: Final = CollectorType(
    name="prometheus",
    enabled_by="FAS_PROMETHEUS_ADDRESS",
    settings=(
        Setting(
            "address",
            "address",
            env=("FAS_PROMETHEUS_ADDRESS",),
            required="prometheus address required",
        ),
        Setting("metric-name", "metric_name", env=("FAS_PROMETHEUS_METRIC_NAME",)),
        Setting(
            "query",
            "query",
            "query",
            env=("FAS_PROMETHEUS_QUERY",),
            required="prometheus query required",
        ),
        Setting(
            "token",
            "token",
            "secret",
            env=("FAS_PROMETHEUS_TOKEN",),
            credential=True,
            header=True,
        ),
    ),
    build=_builder(PrometheusCollector),
    build_machine=_builder(PrometheusMachineCollector),
)
