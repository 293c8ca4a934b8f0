"""Machines API and GraphQL objects, as immutable attrs classes.

Objects are built from API JSON with ``from_api()`` (unknown fields kept, ``null``
tolerated) and turned back into JSON with ``to_api()``. They are frozen: cloning a
config makes a new object and never changes the listed Machine's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from attrs import evolve, field, frozen

from flyautoscaler._durations import format_api_duration

__all__ = [
    "App",
    "ImageRef",
    "LaunchMachineInput",
    "Machine",
    "MachineConfig",
    "MachineLease",
    "MachineStartResponse",
    "MachineState",
    "Organization",
    "Release",
    "RemoveMachineInput",
    "StopMachineInput",
]

#: The process group of a Machine that carries no group metadata.
DEFAULT_PROCESS_GROUP = "app"

JSON = dict[str, Any]


class MachineState:
    """Machine state names used by the Machines API (``Machine.state``)."""

    CREATED = "created"
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SUSPENDING = "suspending"
    SUSPENDED = "suspended"
    RESTARTING = "restarting"
    UPDATING = "updating"
    REPLACING = "replacing"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    FAILED = "failed"
    LAUNCH_FAILED = "launch_failed"
    REPLACED = "replaced"
    MIGRATED = "migrated"


#: ``Machine.host_status`` of a Machine whose host answers.
HOST_STATUS_OK = "ok"


def _obj(value: object) -> JSON:
    """Return *value* if it is a JSON object, else an empty dict (tolerates null)."""
    return dict(value) if isinstance(value, Mapping) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _str_map(value: object) -> dict[str, str] | None:
    if not isinstance(value, Mapping):
        return None
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


def _copy_json(value: Any) -> Any:  # noqa: ANN401 - any JSON value
    """Return a deep copy of *value*: :func:`copy.deepcopy`, faster for JSON.

    Plain dicts and lists are copied item by item, strings, numbers, booleans
    and ``None`` kept (they are immutable); any other value goes to
    :func:`copy.deepcopy`. Decoding a list of 20 Machines takes about half the time.
    """
    kind = type(value)
    if kind is dict:
        return {k: _copy_json(v) for k, v in value.items()}
    if kind is list:
        return [_copy_json(v) for v in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


def _extra(payload: Mapping[str, Any], known: frozenset[str]) -> JSON:
    return {k: _copy_json(v) for k, v in payload.items() if k not in known}


@frozen
class ImageRef:
    """Where a Machine's image comes from (``Machine.image_ref``)."""

    registry: str = ""
    repository: str = ""
    tag: str = ""
    digest: str = ""
    labels: dict[str, str] | None = field(default=None, eq=False)

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> ImageRef:
        """Build from the API's ``image_ref`` object."""
        return cls(
            registry=_str(payload.get("registry")),
            repository=_str(payload.get("repository")),
            tag=_str(payload.get("tag")),
            digest=_str(payload.get("digest")),
            labels=_str_map(payload.get("labels")),
        )

    def to_api(self) -> JSON:
        """Return the API's JSON object."""
        out: JSON = {
            "registry": self.registry,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
        }
        if self.labels is not None:
            out["labels"] = dict(self.labels)
        return out

    def full(self) -> str:
        """Return ``registry/repository[:tag][@digest]`` (fly-go's ``FullImageRef``)."""
        image = f"{self.registry}/{self.repository}"
        if self.tag and self.digest:
            return f"{image}:{self.tag}@{self.digest}"
        if self.digest:
            return f"{image}@{self.digest}"
        if self.tag:
            return f"{image}:{self.tag}"
        return image


_CONFIG_KNOWN = frozenset({"image", "metadata"})


@frozen
class MachineConfig:
    """A Machine's configuration: every field of the API's config JSON.

    ``image`` and ``metadata`` are modelled; everything else (``services``,
    ``guest``, ``env``, ``mounts``, ``checks``, ...) is kept verbatim in ``extra``.
    :meth:`to_api` writes every field back unchanged and in its original order.
    """

    image: str = ""
    metadata: dict[str, str] | None = None
    #: Every config field this library does not model, as received.
    extra: JSON = field(factory=dict)
    # Original key order and which modelled keys were present (even as null),
    # so that to_api() reproduces the received JSON.
    key_order: tuple[str, ...] = field(default=(), repr=False, eq=False, kw_only=True)

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> MachineConfig:
        """Build from the API's ``config`` object; unknown fields are kept."""
        return cls(
            image=_str(payload.get("image")),
            metadata=_str_map(payload.get("metadata")),
            extra=_extra(payload, _CONFIG_KNOWN),
            key_order=tuple(payload),
        )

    def to_api(self) -> JSON:
        """Return the config JSON, every received field included, in its order."""
        modelled: JSON = {}
        if self.image or "image" in self.key_order:
            modelled["image"] = self.image
        if self.metadata is not None or "metadata" in self.key_order:
            modelled["metadata"] = (
                dict(self.metadata) if self.metadata is not None else None
            )
        out: JSON = {}
        for key in self.key_order:
            if key in modelled:
                out[key] = modelled.pop(key)
            elif key in self.extra:
                out[key] = _copy_json(self.extra[key])
        for key, value in self.extra.items():
            if key not in out:
                out[key] = _copy_json(value)
        out.update(modelled)
        return out

    def process_group(self) -> str:
        """Return the group from metadata, or ``""`` when it names none."""
        metadata = self.metadata or {}
        return metadata.get("fly_process_group") or metadata.get("process_group") or ""

    def clone(self, *, image: str | None = None) -> MachineConfig:
        """Return a deep copy, optionally with another ``image``."""
        return evolve(
            self,
            image=self.image if image is None else image,
            metadata=dict(self.metadata) if self.metadata is not None else None,
            extra=_copy_json(self.extra),
        )


_MACHINE_KNOWN = frozenset(
    {
        "id",
        "name",
        "state",
        "region",
        "instance_id",
        "version",
        "private_ip",
        "image_ref",
        "config",
        "incomplete_config",
        "host_status",
        "created_at",
        "updated_at",
        "nonce",
        "events",
        "checks",
    }
)

# Object fields to_api() omits when unset; a received null is kept in ``extra``.
_MACHINE_NULLABLE = ("image_ref", "config", "incomplete_config")


@frozen
class Machine:
    """A Fly Machine as the Machines API lists it."""

    id: str
    name: str = ""
    state: str = ""
    region: str = ""
    instance_id: str = ""
    private_ip: str = ""
    image_ref: ImageRef | None = None
    config: MachineConfig | None = None
    host_status: str = ""
    created_at: str = ""
    updated_at: str = ""
    version: str = ""
    #: Filled instead of ``config`` when the host is unreachable.
    incomplete_config: MachineConfig | None = None
    nonce: str = field(default="", repr=False)
    events: list[JSON] = field(factory=list, eq=False, repr=False)
    checks: list[JSON] = field(factory=list, eq=False, repr=False)
    #: Every other field of the Machine JSON, as received (and the object
    #: fields that came as ``null``, so that ``to_api()`` sends them back).
    extra: JSON = field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> Machine:
        """Build from a Machine JSON object; unknown fields and nulls tolerated.

        Raises:
            ValueError: The object has no string ``id``.
        """
        machine_id = payload.get("id")
        if not isinstance(machine_id, str) or not machine_id:
            raise ValueError(f"machine object has no id: keys {sorted(payload)}")
        image_ref = payload.get("image_ref")
        config = payload.get("config")
        incomplete = payload.get("incomplete_config")
        return cls(
            id=machine_id,
            name=_str(payload.get("name")),
            state=_str(payload.get("state")),
            region=_str(payload.get("region")),
            instance_id=_str(payload.get("instance_id")),
            version=_str(payload.get("version")),
            private_ip=_str(payload.get("private_ip")),
            image_ref=ImageRef.from_api(image_ref)
            if isinstance(image_ref, Mapping)
            else None,
            config=MachineConfig.from_api(config)
            if isinstance(config, Mapping)
            else None,
            incomplete_config=MachineConfig.from_api(incomplete)
            if isinstance(incomplete, Mapping)
            else None,
            host_status=_str(payload.get("host_status")),
            created_at=_str(payload.get("created_at")),
            updated_at=_str(payload.get("updated_at")),
            nonce=_str(payload.get("nonce")),
            events=[
                _obj(e) for e in payload.get("events") or () if isinstance(e, Mapping)
            ],
            checks=[
                _obj(c) for c in payload.get("checks") or () if isinstance(c, Mapping)
            ],
            extra=_extra(payload, _MACHINE_KNOWN)
            | {k: None for k in _MACHINE_NULLABLE if payload.get(k, 0) is None},
        )

    def to_api(self) -> JSON:
        """Return the Machine JSON."""
        out: JSON = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "region": self.region,
            "instance_id": self.instance_id,
            "version": self.version,
            "private_ip": self.private_ip,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "host_status": self.host_status,
        }
        if self.image_ref is not None:
            out["image_ref"] = self.image_ref.to_api()
        if self.config is not None:
            out["config"] = self.config.to_api()
        if self.incomplete_config is not None:
            out["incomplete_config"] = self.incomplete_config.to_api()
        if self.nonce:
            out["nonce"] = self.nonce
        out["events"] = _copy_json(self.events)
        out["checks"] = _copy_json(self.checks)
        for key, value in self.extra.items():
            out.setdefault(key, _copy_json(value))
        return out

    def effective_config(self) -> MachineConfig | None:
        """Return ``config``, else ``incomplete_config`` (fly-go's ``GetConfig``)."""
        return self.config if self.config is not None else self.incomplete_config

    def process_group(self) -> str:
        """Return the Machine's process group.

        ``metadata["fly_process_group"]``, else the legacy
        ``metadata["process_group"]``, else ``"app"`` (fly-go returns ``""`` there;
        flyautoscaler puts such Machines in the default group so that Machines made
        with ``fly machine run`` or the raw API are not invisible).
        """
        config = self.effective_config()
        group = config.process_group() if config is not None else ""
        return group or DEFAULT_PROCESS_GROUP

    def full_image_ref(self) -> str:
        """Return the full image reference (fly-go's ``FullImageRef``).

        ``registry/repository``, then ``:tag`` and/or ``@digest``. A Machine with
        no ``image_ref`` at all gives ``""``.
        """
        return self.image_ref.full() if self.image_ref is not None else ""


@frozen
class LaunchMachineInput:
    """Body of ``POST /v1/apps/{app}/machines``. Empty fields are not sent."""

    config: MachineConfig
    region: str = ""
    skip_launch: bool = False
    name: str = ""

    def to_api(self) -> JSON:
        """Return the request body, omitting empty fields."""
        out: JSON = {"config": self.config.to_api()}
        if self.region:
            out["region"] = self.region
        if self.skip_launch:
            out["skip_launch"] = True
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> LaunchMachineInput:
        """Build from a request body (used by the fake server)."""
        return cls(
            config=MachineConfig.from_api(_obj(payload.get("config"))),
            region=_str(payload.get("region")),
            skip_launch=bool(payload.get("skip_launch")),
            name=_str(payload.get("name")),
        )


@frozen
class StopMachineInput:
    """Body of ``POST .../machines/{id}/stop``.

    Args:
        id: The Machine to stop.
        signal: Signal to send (``SIGINT`` by default on Fly's side).
        timeout: Seconds to wait before ``SIGKILL``; ``None`` leaves Fly's default.
    """

    id: str
    signal: str = ""
    timeout: float | None = None

    def to_api(self) -> JSON:
        """Return the request body, with only the fields that are set."""
        out: JSON = {}
        if self.signal:
            out["signal"] = self.signal
        if self.timeout is not None:
            out["timeout"] = format_api_duration(self.timeout)
        return out


@frozen
class RemoveMachineInput:
    """What ``DELETE .../machines/{id}`` removes, and whether to kill it first."""

    id: str
    kill: bool = False


@frozen
class MachineStartResponse:
    """Answer of ``POST .../machines/{id}/start``."""

    message: str = ""
    status: str = ""
    previous_state: str = ""
    extra: JSON = field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> MachineStartResponse:
        """Build from the response JSON."""
        return cls(
            message=_str(payload.get("message")),
            status=_str(payload.get("status")),
            previous_state=_str(payload.get("previous_state")),
            extra=_extra(payload, frozenset({"message", "status", "previous_state"})),
        )

    def to_api(self) -> JSON:
        """Return the response JSON."""
        out: JSON = {"previous_state": self.previous_state}
        if self.message:
            out["message"] = self.message
        if self.status:
            out["status"] = self.status
        out.update(_copy_json(self.extra))
        return out


@frozen
class Organization:
    """A Fly organization (GraphQL ``organization``)."""

    id: str = ""
    slug: str = ""
    name: str = ""
    type: str = ""

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> Organization:
        """Build from the GraphQL object."""
        return cls(
            id=_str(payload.get("id")),
            slug=_str(payload.get("slug")),
            name=_str(payload.get("name")),
            type=_str(payload.get("type")),
        )

    def to_api(self) -> JSON:
        """Return the GraphQL object."""
        return {"id": self.id, "slug": self.slug, "name": self.name, "type": self.type}


@frozen
class App:
    """A Fly app (GraphQL ``apps.nodes[]``)."""

    name: str = ""
    id: str = ""
    deployed: bool = False
    hostname: str = ""
    platform_version: str = ""
    status: str = ""
    organization_slug: str = ""

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> App:
        """Build from the GraphQL object."""
        return cls(
            name=_str(payload.get("name")),
            id=_str(payload.get("id")),
            deployed=bool(payload.get("deployed")),
            hostname=_str(payload.get("hostname")),
            platform_version=_str(payload.get("platformVersion")),
            status=_str(payload.get("status")),
            organization_slug=_str(_obj(payload.get("organization")).get("slug")),
        )

    def to_api(self) -> JSON:
        """Return the GraphQL object."""
        return {
            "id": self.id,
            "name": self.name,
            "deployed": self.deployed,
            "hostname": self.hostname,
            "platformVersion": self.platform_version,
            "status": self.status,
            "organization": {"slug": self.organization_slug},
        }


@frozen
class Release:
    """An app's current release (GraphQL ``currentReleaseUnprocessed``)."""

    status: str = ""
    id: str = ""
    version: int = 0
    description: str = ""
    reason: str = ""
    image_ref: str = ""
    stable: bool = False
    created_at: str = ""

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> Release:
        """Build from the GraphQL object."""
        version = payload.get("version")
        return cls(
            status=_str(payload.get("status")),
            id=_str(payload.get("id")),
            version=version if isinstance(version, int) else 0,
            description=_str(payload.get("description")),
            reason=_str(payload.get("reason")),
            image_ref=_str(payload.get("imageRef")),
            stable=bool(payload.get("stable")),
            created_at=_str(payload.get("createdAt")),
        )

    def to_api(self) -> JSON:
        """Return the GraphQL object."""
        return {
            "id": self.id,
            "version": self.version,
            "description": self.description,
            "reason": self.reason,
            "status": self.status,
            "imageRef": self.image_ref,
            "stable": self.stable,
            "createdAt": self.created_at,
        }


@frozen
class MachineLease:
    """A lease on a Machine (Machines API ``/lease``): proof of who may act on it.

    While a lease lasts, Fly refuses to start, stop, suspend or destroy the
    Machine without its nonce (``409``).

    Attributes:
        nonce: The secret that proves the holder; sent as the
            ``fly-machine-lease-nonce`` header (the ``nonce`` argument).
        expires_at: When the lease ends, in Unix seconds.
        owner: Who holds it (the token's identity).
        description: What the holder said it was for.
        version: The lease's version.
    """

    nonce: str = field(repr=False)
    expires_at: int = 0
    owner: str = ""
    description: str = ""
    version: str = ""

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> MachineLease:
        """Build from the ``data`` object of the lease endpoints."""
        expires = payload.get("expires_at")
        return cls(
            nonce=_str(payload.get("nonce")),
            expires_at=expires if isinstance(expires, int) else 0,
            owner=_str(payload.get("owner")),
            description=_str(payload.get("description")),
            version=_str(payload.get("version")),
        )

    def to_api(self) -> JSON:
        """Return the ``data`` object of the lease endpoints."""
        return {
            "nonce": self.nonce,
            "expires_at": self.expires_at,
            "owner": self.owner,
            "description": self.description,
            "version": self.version,
        }
