"""docker/: the compose file is valid (`docker-compose config`, no engine needed), has every
service, mounts files that exist, and its dialler config is a valid config."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialler.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
SERVICES = {"postgres", "asterisk", "migrate", "dialler", "worker", "prometheus", "grafana"}
# What compose needs from the environment (docker/.env in real use).
ENV = {
    "DIALLER_AMI_SECRET": "test-ami-secret",
    "DIALLER_AGI_SECRET": "testagisecret0123456789",
    "DIALLER_DB_PASSWORD": "test-db-password",
    "DIALLER_API_TOKEN": "test-api-token-0123456789",
    "GRAFANA_ADMIN_PASSWORD": "test-grafana",
}


def compose_config(env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with exactly `env` for the compose variables: an empty
    --env-file, so a developer's docker/.env plays no part."""
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail(
            "docker-compose is not installed (Debian: package docker-compose; "
            "scripts/bootstrap.sh installs it)"
        )
    empty = tmp / "empty.env"
    empty.write_text("")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DIALLER_", "GRAFANA_"))}
    return subprocess.run(
        [compose, "--env-file", str(empty), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**clean, **env},
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (variables, anchors, paths)."""
    proc = compose_config(ENV, tmp_path_factory.mktemp("compose"))
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = yaml.safe_load(proc.stdout)
    return data


def test_compose_config_lists_every_service(rendered: dict[str, Any]) -> None:
    assert set(rendered["services"]) == SERVICES


def test_compose_needs_its_secrets(tmp_path: Path) -> None:
    env = dict(ENV)
    del env["DIALLER_AMI_SECRET"]
    proc = compose_config(env, tmp_path)
    assert proc.returncode != 0
    assert "DIALLER_AMI_SECRET" in proc.stderr


def test_env_example_supplies_every_variable(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    assert compose is not None
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DIALLER_", "GRAFANA_"))}
    proc = subprocess.run(
        [compose, "--env-file", str(DOCKER / "env.example"), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=clean,
    )
    assert proc.returncode == 0, proc.stderr


def test_daemon_runs_after_the_migration(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    assert services["migrate"]["command"] == ["db", "migrate"]
    assert services["dialler"]["command"] == ["run"]
    assert services["dialler"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["worker"]["command"][0] == "worker"
    assert services["postgres"]["image"].startswith("postgres:15")
    # Long enough for the daemon's drain (120 s) before Docker's SIGKILL.
    assert services["dialler"]["stop_grace_period"] == "150s"


def test_mounted_files_exist(rendered: dict[str, Any]) -> None:
    mounted: list[Path] = []
    for name, service in rendered["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("/"):  # a bind mount (a named volume has no path)
                mounted.append(Path(source))
                assert Path(source).exists(), f"{name} mounts {source}, which does not exist"
    # Includes the shipped alert rules and Grafana dashboard (ops/).
    expected = {
        DOCKER / "dialler.yaml",
        DOCKER / "grafana" / "provisioning",
        DOCKER / "prometheus" / "prometheus.yml",
        ROOT / "ops" / "prometheus" / "dialler-rules.yml",
        ROOT / "ops" / "grafana" / "dialler-dashboard.json",
    }
    assert expected <= set(mounted)


def test_compose_prometheus_config_is_the_shipped_one_but_for_the_target() -> None:
    shipped = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = [c["static_configs"] for c in compose["scrape_configs"]]
    assert targets == [[{"targets": ["dialler:9464"]}]]
    for config in (shipped, compose):
        for scrape in config["scrape_configs"]:
            del scrape["static_configs"]
    assert compose == shipped


def test_build_files_exist(rendered: dict[str, Any]) -> None:
    for name in ("asterisk", "migrate", "dialler", "worker"):
        build = rendered["services"][name]["build"]
        assert Path(build["context"]) == ROOT, name
        assert (ROOT / build["dockerfile"]).is_file(), name
    for dockerfile in (DOCKER / "Dockerfile", DOCKER / "asterisk" / "Dockerfile"):
        # Instructions joined across line continuations; COPY's last argument is the target.
        text = dockerfile.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["COPY"]:
                sources = [w for w in words[1:-1] if not w.startswith("--")]
                for source in sources:
                    assert list(ROOT.glob(source)), f"{dockerfile}: COPY {source}"


def test_grafana_provisioning_points_at_the_mounts(rendered: dict[str, Any]) -> None:
    provisioning = DOCKER / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "dialler.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    targets = [v.split(":")[1] for v in rendered["services"]["grafana"]["volumes"]]
    assert f"{path}/dialler-dashboard.json" in targets


def test_docker_config_is_valid(tmp_path: Path) -> None:
    data = yaml.safe_load((DOCKER / "dialler.yaml").read_text())
    assert data["api"]["tokens_file"] == "/run/dialler/api-tokens"  # the entrypoint's file
    tokens = tmp_path / "api-tokens"
    tokens.write_text(ENV["DIALLER_API_TOKEN"] + "\n")
    data["api"]["tokens_file"] = str(tokens)
    config = parse_config(data, "docker/dialler.yaml", ENV)
    assert config.asterisk[0].ami.host == "asterisk"
    assert {
        config.listeners.agi.host,
        config.listeners.http.host,
        config.listeners.metrics.host,
    } == {"0.0.0.0"}


def test_published_rtp_ports_match_rtp_conf(rendered: dict[str, Any]) -> None:
    settings = dict(
        line.replace(" ", "").split("=", 1)
        for line in (DOCKER / "asterisk" / "rtp.conf").read_text().splitlines()
        if "=" in line and not line.startswith(";")
    )
    rtp = set(range(int(settings["rtpstart"]), int(settings["rtpend"]) + 1))
    published = {
        int(p["target"])
        for p in rendered["services"]["asterisk"]["ports"]
        if p["protocol"] == "udp" and int(p["target"]) != 5060
    }
    assert published == rtp
