"""Tests for the Machines API and GraphQL models (``flyautoscaler._models``)."""

from __future__ import annotations

import copy
from typing import Any

import attrs
import pytest

import flyautoscaler as fas


def _docs_config() -> dict[str, Any]:
    return {
        "image": "registry-1.docker.io/rebelthor/sleep:latest",
        "env": {"PRIMARY_REGION": "ord", "LOG_LEVEL": "info"},
        "init": {},
        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
        "metadata": {"fly_platform_version": "v2", "fly_process_group": "app"},
        "services": [
            {
                "protocol": "tcp",
                "internal_port": 8080,
                "autostop": "suspend",
                "autostart": True,
                "min_machines_running": 0,
                "ports": [
                    {"port": 80, "handlers": ["http"], "force_https": True},
                    {"port": 443, "handlers": ["tls", "http"]},
                ],
                "concurrency": {
                    "type": "connections",
                    "hard_limit": 25,
                    "soft_limit": 20,
                },
            }
        ],
        "mounts": [{"volume": "vol_123", "path": "/data", "size_gb": 1}],
        "checks": {
            "alive": {
                "type": "http",
                "port": 8080,
                "path": "/healthz",
                "interval": "15s",
                "timeout": "2s",
            }
        },
        "restart": {"policy": "on-failure", "max_retries": 10},
        "stop_config": {"timeout": "30s", "signal": "SIGINT"},
    }


def _docs_machine() -> dict[str, Any]:
    """The Machine example of fly-api.md §2.1, with the elided parts filled in."""
    return {
        "id": "a5c5de9ce64ca12",
        "name": "aged-wind-2649",
        "state": "started",
        "region": "ord",
        "instance_id": "1RREBN3T5K95DK9IVP4XHTTPEY2",
        "version": "1RREBN3T5K95DK9IVP4XHTTPEY2",
        "private_ip": "fdaa:0:18:a7b:196:e274:9ce1:2",
        "image_ref": {
            "registry": "registry-1.docker.io",
            "repository": "rebelthor/sleep",
            "tag": "latest",
            "digest": "sha256:597c14fa6d2c1b5d7a3b7bd9f8e6b5a3c3f7e9c0d1a2b3c4d5e6f708",
            "labels": {},
        },
        "created_at": "2023-10-31T02:30:10Z",
        "updated_at": "2023-10-31T02:35:26Z",
        "config": _docs_config(),
        "events": [
            {
                "type": "start",
                "status": "started",
                "source": "flyd",
                "timestamp": 1698719726615,
            },
            {
                "type": "launch",
                "status": "created",
                "source": "user",
                "timestamp": 1698719723203,
            },
        ],
        "checks": [
            {
                "name": "alive",
                "status": "passing",
                "output": "[✓] 200 OK",
                "updated_at": "2023-10-31T02:35:30Z",
            }
        ],
        "host_status": "ok",
        "nonce": "c8e1b1d2a3f4",
        "incomplete_config": None,
        "cordoned": False,
    }


# --- Machine ------------------------------------------------------------------


def test_machine_from_api_reads_fields():
    """from_api reads the modelled fields of the DOCS example."""
    m = fas.Machine.from_api(_docs_machine())
    assert m.id == "a5c5de9ce64ca12"
    assert m.name == "aged-wind-2649"
    assert m.state == fas.MachineState.STARTED
    assert m.region == "ord"
    assert m.instance_id == "1RREBN3T5K95DK9IVP4XHTTPEY2"
    assert m.private_ip == "fdaa:0:18:a7b:196:e274:9ce1:2"
    assert m.host_status == "ok"
    assert m.created_at == "2023-10-31T02:30:10Z"
    assert m.updated_at == "2023-10-31T02:35:26Z"
    assert m.nonce == "c8e1b1d2a3f4"
    assert m.image_ref is not None
    assert m.image_ref.repository == "rebelthor/sleep"
    assert m.config is not None
    assert m.config.image == "registry-1.docker.io/rebelthor/sleep:latest"
    assert m.config.metadata == {
        "fly_platform_version": "v2",
        "fly_process_group": "app",
    }
    assert m.incomplete_config is None
    assert [e["type"] for e in m.events] == ["start", "launch"]
    assert m.checks[0]["status"] == "passing"


def test_machine_round_trip():
    """to_api() gives back the DOCS example Machine JSON."""
    payload = _docs_machine()
    assert fas.Machine.from_api(payload).to_api() == _docs_machine()
    assert payload == _docs_machine()


def test_machine_round_trip_is_stable():
    """from_api(to_api()) rebuilds an equal Machine."""
    m = fas.Machine.from_api(_docs_machine())
    again = fas.Machine.from_api(m.to_api())
    assert again == m
    assert again.to_api() == m.to_api()


def test_machine_unknown_fields_kept():
    """Fields the library does not model survive a round trip."""
    payload = _docs_machine()
    payload["cordoned"] = True
    payload["containers"] = [{"name": "app", "state": "running"}]
    payload["lease"] = {"description": "x", "expires_at": 1, "owner": "me"}
    out = fas.Machine.from_api(payload).to_api()
    assert out["cordoned"] is True
    assert out["containers"] == [{"name": "app", "state": "running"}]
    assert out["lease"] == {"description": "x", "expires_at": 1, "owner": "me"}


def test_machine_from_api_copies_input():
    """Mutating the payload after from_api does not change the Machine."""
    payload = _docs_machine()
    m = fas.Machine.from_api(payload)
    payload["config"]["services"][0]["internal_port"] = 1
    payload["containers"] = []
    assert m.config is not None
    assert m.config.to_api()["services"][0]["internal_port"] == 8080
    assert "containers" not in m.to_api()


def test_machine_null_fields_tolerated():
    """`null` config, image_ref, events and strings are tolerated."""
    m = fas.Machine.from_api(
        {
            "id": "m1",
            "name": None,
            "state": None,
            "config": None,
            "image_ref": None,
            "events": None,
            "checks": None,
            "incomplete_config": None,
        }
    )
    assert m.name == ""
    assert m.state == ""
    assert m.config is None
    assert m.image_ref is None
    assert m.events == []
    assert m.checks == []
    assert m.full_image_ref() == ""
    assert m.process_group() == "app"


def test_machine_null_fields_round_trip():
    """A Machine whose object fields came as null sends them back as null."""
    payload = {"id": "m1", "config": None, "image_ref": None, "incomplete_config": None}
    out = fas.Machine.from_api(payload).to_api()
    assert out["config"] is None
    assert out["image_ref"] is None
    assert out["incomplete_config"] is None


def test_machine_evolved_config_replaces_received_null():
    """Setting a config on a Machine received with `config: null` sends the config."""
    m = fas.Machine.from_api({"id": "m1", "config": None})
    changed = attrs.evolve(m, config=fas.MachineConfig(image="img"))
    assert changed.to_api()["config"] == {"image": "img"}


def test_machine_null_config_members_tolerated():
    """`null` metadata, env and init inside config are tolerated and kept."""
    payload = _docs_machine()
    payload["config"]["metadata"] = None
    payload["config"]["env"] = None
    payload["config"]["init"] = None
    m = fas.Machine.from_api(payload)
    assert m.config is not None
    assert m.config.metadata is None
    assert m.process_group() == "app"
    out = m.to_api()
    assert out["config"]["metadata"] is None
    assert out["config"]["env"] is None
    assert out["config"]["init"] is None
    assert out == payload


@pytest.mark.parametrize("payload", [{}, {"id": ""}, {"id": None}, {"id": 12}])
def test_machine_from_api_without_id_raises(payload):
    """A Machine object without a string id raises ValueError."""
    with pytest.raises(ValueError, match="no id"):
        fas.Machine.from_api(payload)


def test_machine_minimal_construction():
    """A Machine needs only an id."""
    m = fas.Machine(id="m1")
    assert m.state == ""
    assert m.config is None
    assert m.image_ref is None
    assert m.process_group() == "app"


# --- MachineConfig ------------------------------------------------------------


def test_config_round_trip_exact():
    """MachineConfig.from_api(d).to_api() == d, including key order."""
    d = _docs_config()
    out = fas.MachineConfig.from_api(d).to_api()
    assert out == d
    assert list(out) == list(d)
    assert list(out["guest"]) == list(d["guest"])
    assert list(out["env"]) == list(d["env"])
    assert list(out["metadata"]) == list(d["metadata"])
    assert out["services"] == d["services"]
    assert list(out["services"][0]) == list(d["services"][0])
    assert out["mounts"] == d["mounts"]
    assert out["checks"] == d["checks"]


def test_config_round_trip_metadata_null():
    """A `metadata: null` config round-trips with the null in place."""
    d = _docs_config()
    d["metadata"] = None
    out = fas.MachineConfig.from_api(d).to_api()
    assert out == d
    assert list(out) == list(d)
    assert out["metadata"] is None


def test_config_round_trip_key_order_image_last():
    """Modelled keys keep their place even when they come last."""
    d = {"guest": {"cpus": 2}, "metadata": {"a": "b"}, "env": {}, "image": "x"}
    out = fas.MachineConfig.from_api(d).to_api()
    assert out == d
    assert list(out) == ["guest", "metadata", "env", "image"]


def test_config_without_image_has_no_image():
    """A config received without `image` is not given one."""
    assert fas.MachineConfig.from_api({"env": {}}).to_api() == {"env": {}}


def test_config_unknown_fields_in_extra():
    """Fields the library does not model are kept in `extra`."""
    config = fas.MachineConfig.from_api(_docs_config())
    assert set(config.extra) == {
        "env",
        "init",
        "guest",
        "services",
        "mounts",
        "checks",
        "restart",
        "stop_config",
    }


def test_config_built_in_code():
    """A config built with keywords serialises what is set."""
    config = fas.MachineConfig(
        image="img", metadata={"fly_process_group": "web"}, extra={"env": {"A": "1"}}
    )
    assert config.to_api() == {
        "env": {"A": "1"},
        "image": "img",
        "metadata": {"fly_process_group": "web"},
    }
    assert fas.MachineConfig().to_api() == {}


def test_config_clone_sets_image_and_keeps_everything():
    """clone(image=...) replaces the image and keeps every other field."""
    d = _docs_config()
    original = fas.MachineConfig.from_api(d)
    clone = original.clone(image="registry.fly.io/app@sha256:abc")
    out = clone.to_api()
    assert out["image"] == "registry.fly.io/app@sha256:abc"
    assert list(out) == list(d)
    assert {k: v for k, v in out.items() if k != "image"} == {
        k: v for k, v in d.items() if k != "image"
    }
    assert original.image == d["image"]


def test_config_clone_without_image_is_equal():
    """clone() with no image gives an equal copy."""
    original = fas.MachineConfig.from_api(_docs_config())
    clone = original.clone()
    assert clone == original
    assert clone is not original
    assert clone.to_api() == original.to_api()


def test_config_clone_is_deep():
    """Mutating the clone's nested extra or metadata leaves the original alone."""
    original = fas.MachineConfig.from_api(_docs_config())
    before = copy.deepcopy(original.to_api())
    clone = original.clone(image="other")
    clone.extra["guest"]["cpus"] = 16
    clone.extra["services"][0]["ports"].append({"port": 9999})
    clone.extra["env"]["NEW"] = "1"
    assert clone.metadata is not None
    clone.metadata["fly_process_group"] = "worker"
    assert original.to_api() == before
    assert original.extra["guest"]["cpus"] == 1
    assert original.metadata == {
        "fly_platform_version": "v2",
        "fly_process_group": "app",
    }


def test_config_to_api_returns_copy():
    """Mutating to_api() output does not change the config."""
    config = fas.MachineConfig.from_api(_docs_config())
    out = config.to_api()
    out["guest"]["cpus"] = 99
    out["metadata"]["fly_process_group"] = "x"
    assert config.to_api() == _docs_config()


def test_config_from_api_copies_input():
    """Mutating the payload after from_api does not change the config."""
    d = _docs_config()
    config = fas.MachineConfig.from_api(d)
    d["guest"]["cpus"] = 99
    d["metadata"]["fly_process_group"] = "x"
    assert config.to_api() == _docs_config()


# --- full_image_ref -----------------------------------------------------------


@pytest.mark.parametrize(
    ("image_ref", "expected"),
    [
        pytest.param(
            fas.ImageRef("registry.fly.io", "my-app", "deployment-1", "sha256:abc"),
            "registry.fly.io/my-app:deployment-1@sha256:abc",
            id="tag+digest",
        ),
        pytest.param(
            fas.ImageRef("registry.fly.io", "my-app", "", "sha256:abc"),
            "registry.fly.io/my-app@sha256:abc",
            id="digest",
        ),
        pytest.param(
            fas.ImageRef("registry.fly.io", "my-app", "latest", ""),
            "registry.fly.io/my-app:latest",
            id="tag",
        ),
        pytest.param(
            fas.ImageRef("registry.fly.io", "my-app", "", ""),
            "registry.fly.io/my-app",
            id="neither",
        ),
        pytest.param(
            fas.ImageRef("", "library/nginx", "1.25", ""),
            "/library/nginx:1.25",
            id="empty-registry",
        ),
        pytest.param(fas.ImageRef(), "/", id="all-empty"),
        pytest.param(None, "", id="no-image-ref"),
    ],
)
def test_full_image_ref(image_ref, expected):
    """full_image_ref() follows fly-go's FullImageRef (fly-api.md §2.5)."""
    assert fas.Machine(id="m1", image_ref=image_ref).full_image_ref() == expected


def test_full_image_ref_from_docs_example():
    """The DOCS example Machine gives registry/repository:tag@digest."""
    m = fas.Machine.from_api(_docs_machine())
    assert m.full_image_ref() == (
        "registry-1.docker.io/rebelthor/sleep:latest"
        "@sha256:597c14fa6d2c1b5d7a3b7bd9f8e6b5a3c3f7e9c0d1a2b3c4d5e6f708"
    )


def test_image_ref_round_trip():
    """ImageRef.from_api(d).to_api() == d, labels included."""
    d = {
        "registry": "r",
        "repository": "p",
        "tag": "t",
        "digest": "d",
        "labels": {"a": "b"},
    }
    assert fas.ImageRef.from_api(d).to_api() == d


# --- process_group ------------------------------------------------------------


def _machine_with_metadata(metadata: dict[str, str] | None) -> fas.Machine:
    return fas.Machine(id="m1", config=fas.MachineConfig(metadata=metadata))


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"fly_process_group": "web"}, "web"),
        ({"process_group": "worker"}, "worker"),
        ({"fly_process_group": "web", "process_group": "worker"}, "web"),
        ({"fly_process_group": "", "process_group": "worker"}, "worker"),
        ({"fly_platform_version": "v2"}, "app"),
        ({"fly_process_group": "", "process_group": ""}, "app"),
        ({}, "app"),
        (None, "app"),
    ],
)
def test_process_group(metadata, expected):
    """fly_process_group, else legacy process_group, else "app"."""
    assert _machine_with_metadata(metadata).process_group() == expected


def test_process_group_without_config():
    """A Machine with no config at all is in the "app" group."""
    assert fas.Machine(id="m1").process_group() == "app"


def test_process_group_falls_back_to_incomplete_config():
    """With no config, the group comes from incomplete_config."""
    m = fas.Machine.from_api(
        {
            "id": "m1",
            "host_status": "unreachable",
            "config": None,
            "incomplete_config": {"metadata": {"fly_process_group": "worker"}},
        }
    )
    assert m.effective_config() is m.incomplete_config
    assert m.process_group() == "worker"


def test_process_group_prefers_config_over_incomplete_config():
    """When both are there, config wins over incomplete_config."""
    m = fas.Machine(
        id="m1",
        config=fas.MachineConfig(metadata={"fly_process_group": "web"}),
        incomplete_config=fas.MachineConfig(metadata={"fly_process_group": "worker"}),
    )
    assert m.process_group() == "web"


def test_process_group_from_docs_example():
    """The DOCS example Machine is in the "app" group."""
    assert fas.Machine.from_api(_docs_machine()).process_group() == "app"


# --- request inputs -----------------------------------------------------------


def test_launch_input_omits_empty_fields():
    """LaunchMachineInput.to_api() omits empty region/name and skip_launch false."""
    config = fas.MachineConfig(image="img")
    assert fas.LaunchMachineInput(config=config).to_api() == {
        "config": {"image": "img"}
    }


def test_launch_input_all_fields():
    """LaunchMachineInput.to_api() sends region, name and skip_launch when set."""
    config = fas.MachineConfig.from_api(_docs_config())
    body = fas.LaunchMachineInput(
        config=config, region="ams", skip_launch=True, name="m-2"
    ).to_api()
    assert body == {
        "config": _docs_config(),
        "region": "ams",
        "skip_launch": True,
        "name": "m-2",
    }


def test_launch_input_from_api_round_trip():
    """LaunchMachineInput.from_api reads what to_api writes."""
    original = fas.LaunchMachineInput(
        config=fas.MachineConfig.from_api(_docs_config()),
        region="ams",
        skip_launch=True,
    )
    again = fas.LaunchMachineInput.from_api(original.to_api())
    assert again.to_api() == original.to_api()
    assert again.skip_launch is True


@pytest.mark.parametrize(
    ("stop_input", "expected"),
    [
        (fas.StopMachineInput("m1"), {}),
        (fas.StopMachineInput("m1", signal="SIGTERM"), {"signal": "SIGTERM"}),
        (fas.StopMachineInput("m1", timeout=10), {"timeout": "10s"}),
        (fas.StopMachineInput("m1", timeout=0), {"timeout": "0s"}),
        (fas.StopMachineInput("m1", timeout=1.5), {"timeout": "1500ms"}),
        (
            fas.StopMachineInput("m1", signal="SIGINT", timeout=30.0),
            {"signal": "SIGINT", "timeout": "30s"},
        ),
    ],
)
def test_stop_input_to_api(stop_input, expected):
    """StopMachineInput.to_api() sends only what is set, timeout as a Go duration."""
    assert stop_input.to_api() == expected


@pytest.mark.parametrize("timeout", [-1.0, float("inf"), float("nan")])
def test_stop_input_bad_timeout_raises(timeout):
    """A negative or non-finite stop timeout raises ValueError."""
    with pytest.raises(ValueError, match="duration"):
        fas.StopMachineInput("m1", timeout=timeout).to_api()


def test_remove_input_defaults():
    """RemoveMachineInput needs an id; kill defaults to False."""
    remove = fas.RemoveMachineInput("m1")
    assert remove.id == "m1"
    assert remove.kill is False


# --- defaults -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "required"),
    [
        (fas.Machine, {"id"}),
        (fas.StopMachineInput, {"id"}),
        (fas.RemoveMachineInput, {"id"}),
        (fas.LaunchMachineInput, {"config"}),
        (fas.MachineConfig, set()),
        (fas.ImageRef, set()),
        (fas.MachineStartResponse, set()),
        (fas.Organization, set()),
        (fas.App, set()),
        (fas.Release, set()),
    ],
)
def test_required_fields(cls, required):
    """Every field has a default except the documented required ones."""
    missing = {f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING}
    assert missing == required


@pytest.mark.parametrize(
    "cls",
    [
        fas.MachineStartResponse,
        fas.Organization,
        fas.App,
        fas.Release,
        fas.MachineConfig,
        fas.ImageRef,
    ],
)
def test_no_argument_construction(cls):
    """Models without required fields can be built with no arguments."""
    assert cls() == cls()


def test_start_response_round_trip():
    """MachineStartResponse reads and writes the start answer, extras kept."""
    d = {"previous_state": "stopped", "migrated": False, "new_host_id": "h1"}
    response = fas.MachineStartResponse.from_api(d)
    assert response.previous_state == "stopped"
    assert response.to_api() == d
    assert fas.MachineStartResponse().to_api() == {"previous_state": ""}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CREATED", "created"),
        ("STARTED", "started"),
        ("STOPPED", "stopped"),
        ("SUSPENDED", "suspended"),
        ("DESTROYING", "destroying"),
        ("DESTROYED", "destroyed"),
        ("FAILED", "failed"),
    ],
)
def test_machine_state_constants(name, value):
    """MachineState holds the API's state names."""
    assert getattr(fas.MachineState, name) == value


def test_models_are_frozen():
    """Models are immutable."""
    m = fas.Machine(id="m1")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        m.state = "started"  # type: ignore[misc]


# --- GraphQL objects ----------------------------------------------------------


def test_organization_from_graphql():
    """Organization.from_api reads the GetOrganizationBySlug object."""
    payload = {
        "id": "O2NvbXBhbnk=",
        "internalNumericId": "123456",
        "slug": "personal",
        "name": "Jane Doe",
        "type": "PERSONAL",
        "billable": True,
        "limitedAccessTokens": {"nodes": []},
    }
    org = fas.Organization.from_api(payload)
    assert org == fas.Organization(
        id="O2NvbXBhbnk=", slug="personal", name="Jane Doe", type="PERSONAL"
    )
    assert fas.Organization.from_api(org.to_api()) == org


def test_app_from_graphql():
    """App.from_api reads an apps.nodes[] object."""
    payload = {
        "id": "my-app-1",
        "name": "my-app-1",
        "deployed": True,
        "hostname": "my-app-1.fly.dev",
        "platformVersion": "machines",
        "organization": {"slug": "personal", "name": "Jane Doe"},
        "currentRelease": {"createdAt": "2024-01-02T03:04:05Z", "status": "complete"},
        "status": "deployed",
    }
    app = fas.App.from_api(payload)
    assert app.name == "my-app-1"
    assert app.id == "my-app-1"
    assert app.deployed is True
    assert app.hostname == "my-app-1.fly.dev"
    assert app.platform_version == "machines"
    assert app.status == "deployed"
    assert app.organization_slug == "personal"
    assert fas.App.from_api(app.to_api()) == app


def test_app_from_graphql_nulls():
    """App.from_api tolerates a null organization and missing fields."""
    app = fas.App.from_api({"name": "a", "organization": None, "currentRelease": None})
    assert app == fas.App(name="a")


def test_release_from_graphql():
    """Release.from_api reads the currentReleaseUnprocessed object."""
    payload = {
        "id": "UmVsZWFzZTo=",
        "version": 42,
        "description": "Deploy image",
        "reason": "deploy",
        "status": "running",
        "imageRef": "registry.fly.io/my-app:deployment-1",
        "stable": False,
        "user": {"id": "U1", "email": "jane@example.com", "name": "Jane"},
        "createdAt": "2024-01-02T03:04:05Z",
    }
    release = fas.Release.from_api(payload)
    assert release.status == "running"
    assert release.version == 42
    assert release.image_ref == "registry.fly.io/my-app:deployment-1"
    assert release.created_at == "2024-01-02T03:04:05Z"
    assert release.stable is False
    assert fas.Release.from_api(release.to_api()) == release


def test_release_from_graphql_nulls():
    """Release.from_api tolerates nulls."""
    release = fas.Release.from_api(
        {"status": "complete", "version": None, "user": None}
    )
    assert release == fas.Release(status="complete")
