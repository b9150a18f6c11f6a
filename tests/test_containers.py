"""Docker does not run here: the compose file and Dockerfile are checked against the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from campaign_sync.cli import main
from campaign_sync.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def known_variables() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        for choice in getattr(alias, "choices", []):
            if isinstance(choice, str) and choice.isupper():
                names.add(choice)
    return names | {"CAMPAIGN_SYNC_CONFIG"}


def parses(args: list[str]) -> None:
    """The arguments are valid for our CLI (click parses them without running anything)."""
    command = main.commands[args[0]]
    command.make_context(args[0], list(args[1:]))


def shell_commands(command: Any) -> list[list[str]]:
    if isinstance(command, list) and command[:2] == ["sh", "-c"]:
        return [part.replace("exec ", "").split() for part in command[2].split("&&")]
    return [command]


def test_services_profiles_and_healthchecks() -> None:
    services = compose()["services"]
    assert {"db", "sync", "simulator"} <= set(services)
    db = services["db"]
    assert db["image"] == "postgres:16"
    assert any(v.startswith("pgdata:") for v in db["volumes"])
    assert "pgdata" in compose()["volumes"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    sync = services["sync"]
    assert sync["depends_on"]["db"]["condition"] == "service_healthy"
    assert [c[1] for c in shell_commands(sync["command"])] == ["migrate", "serve"]
    assert services["simulator"]["profiles"] == ["demo"]
    assert "healthcheck" in services["simulator"]


def test_every_command_in_compose_is_valid_for_the_cli() -> None:
    for name, service in compose()["services"].items():
        if "command" not in service or service.get("image", "").startswith("postgres"):
            continue
        for command in shell_commands(service["command"]):
            assert command[0] == "campaign-sync", name
            parses(command[1:])


def test_every_environment_variable_in_compose_is_a_real_setting() -> None:
    known = known_variables() | {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
    for name, service in compose()["services"].items():
        for variable in service.get("environment", {}):
            assert variable in known, f"{name}: {variable} is not a setting of the code"
    example = (ROOT / ".env.example").read_text().splitlines()
    for line in example:
        line = line.lstrip("# ")
        if "=" in line and line.split("=")[0].isupper():
            assert line.split("=")[0] in known, line


def test_the_demo_services_use_the_simulators_keys() -> None:
    services = compose()["services"]
    simulate = services["simulator"]["command"]
    demo_env = services["demo-sync"]["environment"]
    assert f"--api-key={demo_env['BATCH_API_KEY']}" in simulate
    assert f"--rest-api-key={demo_env['BATCH_REST_API_KEY']}" in simulate
    assert demo_env["BATCH_API_BASE_URL"] == "http://simulator:8787"


def test_the_dockerfile_runs_serve_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.12-slim" in dockerfile
    assert "USER campaign-sync" in dockerfile
    assert 'ENTRYPOINT ["campaign-sync"]' in dockerfile and 'CMD ["serve"]' in dockerfile
    copies = [line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    copied = {source for sources in copies for source in sources}
    assert {"campaign_sync", "migrations", "pyproject.toml"} <= copied, copies


def test_the_container_serves_metrics_on_every_interface() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "CAMPAIGN_SYNC_METRICS_HOST=0.0.0.0" in dockerfile
    services = compose()["services"]
    for name in ("sync", "demo-sync"):
        assert services[name]["environment"]["CAMPAIGN_SYNC_METRICS_HOST"] == "0.0.0.0", name
