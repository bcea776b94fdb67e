"""core.settings is the one place the environment is read, and compose.yaml agrees with it."""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest
import yaml

from core import paths, settings
from core.topology import Topology

SOURCES = [p for pkg in ("core", "lab", "agents", "chaos") for p in (paths.ROOT / pkg).rglob("*.py")]


def _reads_environment(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv", "environb")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]


def test_only_core_settings_reads_the_environment() -> None:
    found = {
        str(p.relative_to(paths.ROOT)): lines
        for p in SOURCES
        if p.name != "settings.py" or p.parent.name != "core"
        if (lines := _reads_environment(ast.parse(p.read_text())))
    }
    assert found == {}, f"read the environment through core.settings, not os.environ: {found}"


def test_settings_parse_and_treat_empty_as_unset() -> None:
    s = settings.SteeringSettings.from_env({"STEERING_HTTP_PORT": "9000", "STEERING_LKG": "", "STEERING_TOKEN": "t"})
    assert (s.http_port, s.dns_port, s.lkg, s.token) == (9000, 53, None, "t")
    assert settings.HostSettings.from_env({}).token == settings.OPERATOR_TOKEN
    assert settings.ChaosSettings.from_env({}).token == settings.OPERATOR_TOKEN
    assert settings.WardenSettings.from_env({}).steering_token == settings.OPERATOR_TOKEN


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(paths.COMPOSE_FILE.read_text())
    return data


def test_compose_sets_only_variables_its_services_read(compose: dict[str, Any]) -> None:
    for cls in settings.ALL:
        for service in cls.compose_services:
            env = compose["services"][service].get("environment") or {}
            unknown = set(env) - set(cls.variables()) - set(settings.EventLogSettings.variables())
            assert not unknown, f"compose.yaml sets {sorted(unknown)} for {service}; {cls.__name__} does not read it"


def test_compose_passes_the_one_operator_token_default(compose: dict[str, Any]) -> None:
    text = paths.COMPOSE_FILE.read_text()
    defaults = set(re.findall(r"\$\{WOBBLE_TOKEN:-([^}]*)\}", text))
    assert defaults == {settings.OPERATOR_TOKEN}


def test_compose_values_agree_with_the_settings_defaults(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert int(services["idp"]["environment"]["PORT"]) == settings.IdpSettings().port
    assert int(services["crm"]["environment"]["PORT"]) == settings.CrmSettings().port
    assert services["idp"]["environment"]["IDP_SECRET"] == settings.AgentsSettings().idp_secret
    assert services["caller"]["environment"]["STEERING_URL"] == settings.CarrierProbeSettings().steering_url
    assert settings.CarrierProbeSettings().steering_url == Topology.default().steering_url
    assert float(services["chaos"]["environment"]["CHAOS_LEASE_TTL"]) == settings.ChaosSettings().lease_ttl_s
    assert Topology.default().chaos_url.endswith(f":{settings.ChaosSettings().port}")


def test_every_settings_object_is_listed() -> None:
    declared = {
        obj for obj in vars(settings).values() if isinstance(obj, type) and issubclass(obj, settings.Settings)
    } - {settings.Settings}
    assert declared == set(settings.ALL)
    names = [v for cls in settings.ALL for v in cls.variables()]
    assert len(set(names)) >= 25  # the lab's variables, all here
