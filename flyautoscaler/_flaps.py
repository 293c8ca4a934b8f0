"""The Machines API ("flaps") client: ``flyautoscaler.fly.FlapsHTTPClient``."""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Mapping
from typing import Any

import requests
from attrs import Factory, field, frozen

from flyautoscaler._errors import (
    FlapsConflictError,
    FlapsError,
    FlapsNotFoundError,
    FlapsNotSentError,
    FlapsRateLimitedError,
    FlapsServerError,
    FlapsTransportError,
)
from flyautoscaler._http import (
    HTTPOptions,
    Lifecycle,
    Sender,
    SessionPool,
    check_base_url,
    decode_json,
    encode_json,
    env_base_url,
    flaps_authorization,
    make_sender,
    parse_retry_after,
    request_headers,
    request_id,
    scrub,
    server_error_status,
    server_message,
)
from flyautoscaler._models import (
    LaunchMachineInput,
    Machine,
    MachineLease,
    MachineStartResponse,
    RemoveMachineInput,
    StopMachineInput,
)
from flyautoscaler._ratelimit import RateLimiter

__all__ = ["DEFAULT_FLAPS_BASE_URL", "FlapsHTTPClient", "flaps_base_url"]

#: The public Machines API.
DEFAULT_FLAPS_BASE_URL = "https://api.machines.dev"


def flaps_base_url(environ: Mapping[str, str] | None = None) -> str:
    """Return ``FLY_FLAPS_BASE_URL`` if set and non-empty, else the public API.

    Args:
        environ: Where to look (default :data:`os.environ`).
    """
    return env_base_url("FLY_FLAPS_BASE_URL", DEFAULT_FLAPS_BASE_URL, environ)


@frozen(eq=False)
class FlapsHTTPClient(Lifecycle, HTTPOptions):
    """The Machines API for one app, over HTTP.

    Thread-safe: each thread uses its own :class:`requests.Session`.

    Args:
        app_name: The app whose Machines this client manages.
        token: A Fly API token (see :func:`flaps_authorization`); never shown.
        base_url: The Machines API. Default: ``FLY_FLAPS_BASE_URL`` when set
            (read when the client is built), else ``https://api.machines.dev``.
        timeout: ``(connect, read)`` seconds on every request.
        retry: When and how to retry; see :class:`RetryPolicy`.
        user_agent: The ``User-Agent`` header.
        sleep: Waits between retries and for rate-limit tokens (tests inject
            a recorder).
        clock: Monotonic seconds, for the retry budget and the rate limiter.
        sessions: A :class:`SessionPool` to share with other clients.
        rate_limiter: Client-side token buckets that keep requests inside Fly's
            documented limits (:class:`RateLimiter`: per action and Machine,
            per action and app for create and list; 1/s with a burst of 3).
            Each client gets its own by default; pass one to share it, or
            ``None`` to send without pacing.

    Raises:
        ConfigError: The token is empty, or the base URL or timeout is invalid.
    """

    app_name: str
    _token: str = field(repr=False)
    base_url: str = field(
        factory=flaps_base_url, kw_only=True, converter=check_base_url
    )
    sessions: SessionPool | None = field(default=None, kw_only=True, repr=False)
    rate_limiter: RateLimiter | None = field(
        default=Factory(RateLimiter), kw_only=True, repr=False
    )
    _authorization: str = field(init=False, repr=False)
    _sender: Sender = field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Frozen: the configuration is fixed once the client is built.
        object.__setattr__(self, "_authorization", flaps_authorization(self._token))
        object.__setattr__(
            self, "_sender", make_sender(self, limiter=self.rate_limiter)
        )

    def _send(  # noqa: PLR0913 - one request, described in full
        self,
        method: str,
        suffix: str = "",
        *,
        action: str,
        key: str = "",
        query: Mapping[str, str] | None = None,
        body: object = None,
        nonce: str = "",
        idempotent: bool = True,
    ) -> requests.Response:
        """Send one request; *action* and *key* (default: the app) pick its bucket."""
        app = urllib.parse.quote(self.app_name, safe="")
        url = f"{self.base_url}/v1/apps/{app}/machines{suffix}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else encode_json(body)
        return self._sender.send(
            method,
            url,
            headers=request_headers(
                self._authorization, self.user_agent, body=data is not None, nonce=nonce
            ),
            body=data,
            idempotent=idempotent,
            response_error=lambda response: self._error(method, url, response),
            transport_error=lambda exc, sent: FlapsTransportError(
                scrub(f"{type(exc).__name__}: {exc}", self._token),
                method=method,
                url=url,
                sent=sent,
            ),
            log_event="flaps.retry",
            log_extra={"app": self.app_name},
            rate_key=(action, key or self.app_name),
            limited_error=lambda seconds: FlapsRateLimitedError(
                f"client-side rate limit: {action} would wait {seconds:.1f} s "
                "for a token, longer than the limiter's max_wait; not sent",
                retry_after=seconds,
                status=None,
                method=method,
                url=url,
            ),
            not_sent_error=lambda reason, text: FlapsNotSentError(
                text, reason=reason, method=method, url=url
            ),
        )

    def _error(self, method: str, url: str, response: requests.Response) -> FlapsError:
        status = response.status_code
        message = scrub(server_message(response), self._token)
        where: dict[str, Any] = {
            "status": status,
            "method": method,
            "url": url,
            "request_id": request_id(response),
            "error_status": server_error_status(response),
        }
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return FlapsRateLimitedError(message, retry_after=retry_after, **where)
        if status == 404:
            return FlapsNotFoundError(message, **where)
        if status in {409, 412}:
            return FlapsConflictError(message, **where)
        if status >= 500:
            return FlapsServerError(message, **where)
        return FlapsError(message, **where)

    def _decode(self, response: requests.Response) -> object:
        try:
            return decode_json(response)
        except ValueError as exc:
            raise self._bad_response(response, f"response is not JSON: {exc}") from exc

    def _bad_response(self, response: requests.Response, problem: str) -> FlapsError:
        body = response.content.decode("utf-8", errors="replace")
        error = FlapsError(
            scrub(f"{problem}: {body}", self._token),
            status=response.status_code,
            method=response.request.method or "",
            url=response.url,
            request_id=request_id(response),
        )
        error.transient = True  # a garbled answer is likely a passing fault
        return error

    def _machine(self, response: requests.Response, payload: object) -> Machine:
        if not isinstance(payload, Mapping):
            raise self._bad_response(response, "expected a Machine object")
        try:
            return Machine.from_api(payload)
        except ValueError as exc:
            raise self._bad_response(response, str(exc)) from exc

    def launch(self, launch_input: LaunchMachineInput) -> Machine:
        """Create a Machine (``POST /v1/apps/{app}/machines``) and return it.

        The body is ``launch_input.to_api()``: the config exactly as received
        (fields and key order), and ``region``/``skip_launch``/``name`` when set.
        Retried only on 429 or when the connection was never established: any
        other failure may have created the Machine, so it is raised at once.

        Raises:
            FlapsError: The API refused or failed, or did not answer.
        """
        response = self._send(
            "POST", action="launch", body=launch_input.to_api(), idempotent=False
        )
        return self._machine(response, self._decode(response))

    def start(self, machine_id: str, nonce: str = "") -> MachineStartResponse:
        """Start a Machine (``POST .../{id}/start``, no body).

        Raises:
            FlapsError: The API refused or failed, or did not answer.
        """
        response = self._send(
            "POST",
            self._machine_path(machine_id, "/start"),
            action="start",
            key=machine_id,
            nonce=nonce,
        )
        payload = self._decode(response)
        return MachineStartResponse.from_api(
            payload if isinstance(payload, Mapping) else {}
        )

    def stop(self, stop_input: StopMachineInput, nonce: str = "") -> None:
        """Stop a Machine (``POST .../{id}/stop``).

        The JSON body holds only the fields that are set (``signal``,
        ``timeout``); with none set it is ``{}``, which every reading of the
        API accepts (fly-go always sends a body here).

        Raises:
            FlapsError: The API refused or failed, or did not answer.
        """
        self._send(
            "POST",
            self._machine_path(stop_input.id, "/stop"),
            action="stop",
            key=stop_input.id,
            body=stop_input.to_api(),
            nonce=nonce,
        )

    def suspend(self, machine_id: str, nonce: str = "") -> None:
        """Suspend a Machine (``POST .../{id}/suspend``, no body).

        A later :meth:`start` resumes it from its saved memory.

        Raises:
            FlapsError: The API refused or failed, or did not answer.
        """
        self._send(
            "POST",
            self._machine_path(machine_id, "/suspend"),
            action="suspend",
            key=machine_id,
            nonce=nonce,
        )

    def acquire_lease(
        self,
        machine_id: str,
        ttl: float = 30.0,
        *,
        description: str = "",
        nonce: str = "",
    ) -> MachineLease:
        """Take a lease on a Machine (``POST .../{id}/lease?ttl=N``).

        While it lasts, nobody else may start, stop, suspend or destroy the
        Machine; pass its ``nonce`` to those calls, then :meth:`release_lease`.
        The request is not resent once it may have reached Fly (a lease taken
        twice would be held against this client).

        Args:
            machine_id: The Machine to lease.
            ttl: How long the lease lasts, in whole seconds (at least 1).
            description: What the lease is for, shown to other clients.
            nonce: The nonce of a lease held, to refresh it.

        Raises:
            FlapsConflictError: Someone else holds the lease (``409``).
            FlapsError: The API refused or failed, or did not answer.
        """
        body = {"description": description} if description else None
        response = self._send(
            "POST",
            self._machine_path(machine_id, "/lease"),
            action="acquire_lease",
            key=machine_id,
            query={"ttl": str(max(1, math.ceil(ttl)))},
            body=body,
            nonce=nonce,
            idempotent=False,
        )
        payload = self._decode(response)
        data = payload.get("data") if isinstance(payload, Mapping) else None
        if not isinstance(data, Mapping) or not data.get("nonce"):
            raise self._bad_response(response, "lease answer without a nonce")
        return MachineLease.from_api(data)

    def release_lease(self, machine_id: str, nonce: str) -> None:
        """Release a lease held on a Machine (``DELETE .../{id}/lease``).

        Raises:
            FlapsError: The API refused or failed, or did not answer.
        """
        self._send(
            "DELETE",
            self._machine_path(machine_id, "/lease"),
            action="release_lease",
            key=machine_id,
            nonce=nonce,
        )

    def destroy(self, remove_input: RemoveMachineInput, nonce: str = "") -> None:
        """Destroy a Machine (``DELETE .../{id}``).

        With ``remove_input.kill`` the query is ``?force=true&kill=true``: Fly
        documents ``force``, fly-go (and so the Go autoscaler) sends ``kill``;
        sending both works whichever one the server reads.

        Raises:
            FlapsError: The API refused or failed, or did not answer.
        """
        query = {"force": "true", "kill": "true"} if remove_input.kill else None
        self._send(
            "DELETE",
            self._machine_path(remove_input.id),
            action="destroy",
            key=remove_input.id,
            query=query,
            nonce=nonce,
        )

    def list(self, state: str = "") -> list[Machine]:
        """Return the app's Machines (``GET /v1/apps/{app}/machines``).

        Full Machines (never ``summary``); a non-empty *state* (``"started"``,
        or a comma-separated list) is sent as ``?state=``.

        Raises:
            FlapsError: The API refused or failed, or did not answer.
        """
        response = self._send(
            "GET", action="list", query={"state": state} if state else None
        )
        payload = self._decode(response)
        if not isinstance(payload, list):
            raise self._bad_response(response, "expected a JSON array of Machines")
        return [self._machine(response, item) for item in payload]

    @staticmethod
    def _machine_path(machine_id: str, suffix: str = "") -> str:
        return f"/{urllib.parse.quote(machine_id, safe='')}{suffix}"
