"""The GraphQL API client; public as :class:`flyautoscaler.fly.FlyGraphQLClient`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from attrs import field, frozen

from flyautoscaler._errors import FlyAPIError
from flyautoscaler._http import (
    HTTPOptions,
    Lifecycle,
    Sender,
    SessionPool,
    check_base_url,
    decode_json,
    encode_json,
    env_base_url,
    graphql_authorization,
    make_sender,
    request_headers,
    request_id,
    scrub,
    server_message,
)
from flyautoscaler._models import App, Organization, Release

__all__ = [
    "APPS_QUERY",
    "DEFAULT_API_BASE_URL",
    "MAX_APP_PAGES",
    "ORGANIZATION_QUERY",
    "RELEASE_QUERY",
    "FlyGraphQLClient",
    "api_base_url",
]

#: The public GraphQL API's host; queries go to ``{base}/graphql``.
DEFAULT_API_BASE_URL = "https://api.fly.io"


def api_base_url(environ: Mapping[str, str] | None = None) -> str:
    """Return ``FLY_API_BASE_URL`` if set and non-empty, else ``https://api.fly.io``.

    Args:
        environ: Where to look (default :data:`os.environ`).
    """
    return env_base_url("FLY_API_BASE_URL", DEFAULT_API_BASE_URL, environ)


#: Most pages of 200 apps :meth:`FlyGraphQLClient.get_apps_for_organization` reads.
MAX_APP_PAGES = 1000


def _compact(query: str) -> str:
    """Squash whitespace to single spaces, as fly-go sends queries."""
    return " ".join(query.split())


#: fly-api.md §3.2 (fly-go ``GetOrganizationBySlug``).
ORGANIZATION_QUERY = _compact("""
query($slug: String!) { organization(slug: $slug) {
  id internalNumericId slug name type billable
  limitedAccessTokens { nodes { id name expiresAt revokedAt user { email } } } } }
""")

#: fly-api.md §3.3 (fly-go ``getAppsPage``), 200 apps a page.
APPS_QUERY = _compact("""
query($org: ID, $role: String, $after: String) {
  apps(type: "container", first: 200, after: $after,
       organizationId: $org, role: $role) {
    pageInfo { hasNextPage endCursor }
    nodes { id name deployed hostname platformVersion organization { slug name }
            currentRelease { createdAt status } status } } }
""")

#: fly-api.md §3.4 (fly-go ``GetAppCurrentReleaseMachines``).
RELEASE_QUERY = _compact("""
query ($appName: String!) { app(name: $appName) {
  currentRelease: currentReleaseUnprocessed {
    id version description reason status imageRef stable user { id email name }
    createdAt } } }
""")


def _mapping(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


@frozen(eq=False)
class FlyGraphQLClient(Lifecycle, HTTPOptions):
    """Fly's GraphQL API (organizations, apps, releases), over HTTP.

    Every query is a read, so every query is retried on a connection failure,
    a timeout, 429, 502, 503 and 504, within the :class:`RetryPolicy`.
    Thread-safe: each thread uses its own :class:`requests.Session`.

    Args:
        token: A Fly API token (see :func:`graphql_authorization`); never shown.
        base_url: The API host; queries are POSTed to ``{base_url}/graphql``.
            Default: ``FLY_API_BASE_URL`` when set (read when the client is
            built), else ``https://api.fly.io``.
        timeout: ``(connect, read)`` seconds on every request.
        retry: When and how to retry; see :class:`RetryPolicy`.
        user_agent: The ``User-Agent`` header.
        sleep: Waits between retries (tests inject a recorder).
        clock: Monotonic seconds, for the retry budget.
        sessions: A :class:`SessionPool` to share with other clients.
        max_pages: Most pages :meth:`get_apps_for_organization` reads.

    Raises:
        ConfigError: The token is empty, or the base URL or timeout is invalid.
    """

    _token: str = field(repr=False)
    base_url: str = field(factory=api_base_url, kw_only=True, converter=check_base_url)
    sessions: SessionPool | None = field(default=None, kw_only=True, repr=False)
    max_pages: int = field(default=MAX_APP_PAGES, kw_only=True)
    _authorization: str = field(init=False, repr=False)
    _sender: Sender = field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Frozen: the configuration is fixed once the client is built.
        object.__setattr__(self, "_authorization", graphql_authorization(self._token))
        object.__setattr__(self, "_sender", make_sender(self))

    @property
    def url(self) -> str:
        """The GraphQL endpoint, ``{base_url}/graphql``."""
        return f"{self.base_url}/graphql"

    def _error(
        self, operation: str, response: requests.Response, problem: str = ""
    ) -> FlyAPIError:
        """Return the error for *response*; a *problem* makes it a garbled answer."""
        if problem:  # a malformed answer is most likely a passing fault
            body = response.content.decode("utf-8", errors="replace")
            message, transient = f"{problem}: {body}", True
        else:
            message, transient = server_message(response), None
        return FlyAPIError(
            scrub(message, self._token),
            status=response.status_code,
            operation=operation,
            url=self.url,
            request_id=request_id(response),
            transient=transient,
        )

    def _query(
        self, operation: str, query: str, variables: Mapping[str, object]
    ) -> Mapping[str, Any]:
        """POST one query; return its ``data`` object.

        Raises:
            FlyAPIError: A non-200 status, no answer, a malformed answer, or
                GraphQL ``errors`` (the first one's message and code).
        """
        response = self._sender.send(
            "POST",
            self.url,
            headers=request_headers(self._authorization, self.user_agent, body=True),
            body=encode_json({"query": query, "variables": dict(variables)}),
            idempotent=True,
            response_error=lambda response: self._error(operation, response),
            transport_error=lambda exc, _sent: FlyAPIError(
                scrub(f"{type(exc).__name__}: {exc}", self._token),
                operation=operation,
                url=self.url,
            ),
            log_event="graphql.retry",
            log_extra={"operation": operation},
        )
        if response.status_code != 200:
            raise self._error(operation, response)
        try:
            payload = _mapping(decode_json(response))
        except ValueError:
            payload = None
        if payload is None:
            raise self._error(
                operation, response, "response is not a JSON object"
            ) from None
        errors = payload.get("errors")
        if isinstance(errors, list) and errors:
            first = _mapping(errors[0]) or {}
            code = (_mapping(first.get("extensions")) or {}).get("code")
            raise FlyAPIError(
                scrub(str(first.get("message") or "GraphQL error"), self._token),
                code=code if isinstance(code, str) else "",
                status=response.status_code,
                operation=operation,
                url=self.url,
                request_id=request_id(response),
            )
        data = _mapping(payload.get("data"))
        if data is None:
            raise self._error(operation, response, "response has no data object")
        return data

    def get_organization_by_slug(self, slug: str) -> Organization:
        """Return the organization named *slug*.

        Raises:
            FlyAPIError: No such organization (code ``NOT_FOUND``), or the query
                failed.
        """
        operation = "GetOrganizationBySlug"
        data = self._query(operation, ORGANIZATION_QUERY, {"slug": slug})
        org = _mapping(data.get("organization"))
        if org is None:
            raise FlyAPIError(
                f"organization {slug!r} not found",
                code="NOT_FOUND",
                status=200,
                operation=operation,
                url=self.url,
            )
        return Organization.from_api(org)

    def get_apps_for_organization(self, org_id: str) -> list[App]:
        """Return every app of the organization *org_id*, 200 per request.

        Follows ``pageInfo.endCursor`` while ``hasNextPage`` is true, for at most
        ``max_pages`` pages.

        Raises:
            FlyAPIError: The query failed, or the pages did not end (more than
                ``max_pages``, or a repeated cursor).
        """
        operation = "GetAppsForOrganization"
        apps: list[App] = []
        after = ""  # fly-go sends "" (not null) for the first page
        seen: set[str] = set()
        for _ in range(self.max_pages):
            data = self._query(operation, APPS_QUERY, {"org": org_id, "after": after})
            page = _mapping(data.get("apps")) or {}
            nodes = page.get("nodes")
            if isinstance(nodes, list):
                apps.extend(App.from_api(n) for n in nodes if isinstance(n, Mapping))
            info = _mapping(page.get("pageInfo")) or {}
            if info.get("hasNextPage") is not True:
                return apps
            cursor = info.get("endCursor")
            if not isinstance(cursor, str) or not cursor or cursor in seen:
                raise FlyAPIError(
                    f"apps page after {after!r} has a next page but cursor {cursor!r}",
                    operation=operation,
                    status=200,
                    url=self.url,
                )
            seen.add(cursor)
            after = cursor
        raise FlyAPIError(
            f"organization {org_id!r} has more than {self.max_pages} pages of apps",
            operation=operation,
            status=200,
            url=self.url,
        )

    def get_app_current_release_machines(self, app_name: str) -> Release | None:
        """Return the app's current release, or ``None`` when it has none.

        Raises:
            FlyAPIError: No such app (code ``NOT_FOUND``), or the query failed.
        """
        operation = "GetAppCurrentReleaseMachines"
        data = self._query(operation, RELEASE_QUERY, {"appName": app_name})
        app = _mapping(data.get("app"))
        if app is None:
            raise FlyAPIError(
                f"app {app_name!r} not found",
                code="NOT_FOUND",
                status=200,
                operation=operation,
                url=self.url,
            )
        release = _mapping(app.get("currentRelease"))
        return Release.from_api(release) if release is not None else None
