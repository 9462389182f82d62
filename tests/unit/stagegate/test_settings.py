"""stagegate.settings: every STAGEGATE_* variable read once, with today's names, formats
and defaults, and errors that name the variable."""

from pathlib import Path

import pytest

from stagegate.errors import InvalidInputError
from stagegate.settings import PREFIX, READERS, Settings, load_settings, mask_password, shown, variable


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith(PREFIX)]:
        monkeypatch.delenv(name)


def test_defaults_are_todays() -> None:
    s = load_settings()
    assert s.database_url is None
    assert s.home == Path("~/.local/share/stagegate")
    assert s.broker_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert (s.lease_seconds, s.decision_wait, s.reconcile_seconds) == (120.0, 10.0, 10.0)
    assert (s.batch_max_files, s.batch_max_bytes, s.bandwidth_limit) == (1000, 1 << 30, None)
    assert (s.scrub_rate, s.scrub_interval) == (20 << 20, 86400.0)
    assert (s.policy, s.url, s.token, s.source_roots, s.source_schemes) == (None, None, None, None, None)
    assert s.source_rules().roots == ()
    assert (s.checkpoint_events, s.checkpoint_seconds, s.checkpoint_origin) == (
        1000,
        3600.0,
        "stagegate.local/audit",
    )
    assert (s.checkpoint_key, s.checkpoint_key_file, s.checkpoint_publish) == (None, None, None)
    assert s.checkpoint_retention_days == 365
    assert (s.plan_fresh_seconds, s.label_rescan_rate, s.label_rescan_interval) == (30.0, 50.0, 3600.0)
    assert s.plan_keep_warm_seconds == 600.0


def test_each_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "DATABASE_URL": "postgresql+psycopg://u:pw@db/ledger",
        "HOME": "/srv/sg",
        "DB_RUNTIME_ROLE": "stagegate_app",
        "BROKER_URL": "redis://redis:6379/1",
        "LEASE_SECONDS": "30",
        "DECISION_WAIT": "0",
        "RECONCILE_SECONDS": "2.5",
        "BATCH_MAX_FILES": "10",
        "BATCH_MAX_BYTES": "4096",
        "BANDWIDTH_LIMIT": "600KB",
        "COPY_PROCESSES": "3",
        "RUNS_ROOT": "/runs",
        "EGRESS_ROOT": "/egress",
        "SCRUB_RATE": "0",
        "SCRUB_INTERVAL": "60",
        "SOURCE_ROOTS": "/mnt/home/{user}",
        "SOURCE_SCHEMES": "gcs",
        "POLICY": "/etc/sg/policy.yaml",
        "URL": "http://stagegate:8080",
        "TOKEN": " sg_abc \n",
        "CHECKPOINT_EVENTS": "0",
        "CHECKPOINT_SECONDS": "600",
        "CHECKPOINT_ORIGIN": "example.org/audit",
        "CHECKPOINT_KEY_FILE": "/etc/sg/checkpoint.key",
        "CHECKPOINT_KEY": "PRIVATE+KEY+example.org/audit+00000000+AAAA",
        "CHECKPOINT_PUBLISH": "s3://audit-lock/checkpoints",
        "CHECKPOINT_RETENTION_DAYS": "30",
        "PIN_TTL": "4h",
        "PIN_TTL_MAX": "2d",
        "KUBE_API": "https://kube.example:6443/",
        "KUBE_TOKEN_FILE": "/run/sa/token",
        "KUBE_CA_FILE": "/run/sa/ca.crt",
        "OWNER_CHECK_SECONDS": "30",
        "VIEWS": "1",
        "PLAN_FRESH_SECONDS": "0",
        "PLAN_KEEP_WARM_SECONDS": "0",
        "LABEL_RESCAN_RATE": "5",
        "LABEL_RESCAN_INTERVAL": "600",
        "FANOUT_READERS": "2",
        "FANOUT_PER_HOLDER": "3",
        "PEER_LISTEN": "10.1.0.5:7070",
        "PEER_URL": "http://gpu-01.fabric:7070/",
        "PEER_SECRET_FILE": "/run/sg/peer-secret",
        "PEER_SECRET": "a-peer-secret-of-sixteen+",
        "PEER_BANDWIDTH_LIMIT": "4MiB",
    }
    for name, value in values.items():
        monkeypatch.setenv(PREFIX + name, value)
    # Kubernetes' own variables keep Kubernetes' names: the in-cluster API, the downward API.
    kubernetes = {
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "POD_NAMESPACE": "ml",
        "POD_NAME": "train-0",
        "POD_UID": "0b7e3f0c-5d2a-4c1e-9f0a-2b3c4d5e6f70",
    }
    for name, value in kubernetes.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.database_url is not None and s.database_url.get_secret_value() == values["DATABASE_URL"]
    assert (s.home, s.db_runtime_role, s.broker_url.get_secret_value()) == (
        Path("/srv/sg"),
        "stagegate_app",
        "redis://redis:6379/1",
    )
    assert (s.lease_seconds, s.decision_wait, s.reconcile_seconds) == (30.0, 0.0, 2.5)
    assert (s.batch_max_files, s.batch_max_bytes, s.bandwidth_limit) == (10, 4096, 600_000)
    assert s.copy_processes == 3
    assert (s.runs_root, s.egress_root, s.scrub_rate, s.scrub_interval) == (
        Path("/runs"),
        Path("/egress"),
        0,
        60.0,
    )
    assert s.source_rules().roots_for("alice", None) == ["/mnt/home/alice"]
    assert s.source_rules().schemes == frozenset({"gcs"})
    assert (s.policy, s.url) == (Path("/etc/sg/policy.yaml"), "http://stagegate:8080")
    assert s.token is not None and s.token.get_secret_value() == "sg_abc"
    assert (s.checkpoint_events, s.checkpoint_seconds, s.checkpoint_origin) == (0, 600.0, "example.org/audit")
    assert (s.checkpoint_key_file, s.checkpoint_publish, s.checkpoint_retention_days) == (
        Path("/etc/sg/checkpoint.key"),
        "s3://audit-lock/checkpoints",
        30,
    )
    assert s.checkpoint_key is not None and s.checkpoint_key.get_secret_value().startswith("PRIVATE+KEY+")
    assert (s.pin_ttl, s.pin_ttl_max) == (4 * 3600.0, 2 * 86400.0)
    assert (s.kube_api_url(), s.kube_token_file, s.kube_ca_file, s.owner_check_seconds) == (
        "https://kube.example:6443",
        Path("/run/sa/token"),
        Path("/run/sa/ca.crt"),
        30.0,
    )
    assert s.views is True
    assert (s.kubernetes_service_host, s.kubernetes_service_port) == ("10.0.0.1", "443")
    assert (s.pod_namespace, s.pod_name, s.pod_uid) == ("ml", "train-0", kubernetes["POD_UID"])
    assert (s.plan_fresh_seconds, s.label_rescan_rate, s.label_rescan_interval) == (0.0, 5.0, 600.0)
    assert s.plan_keep_warm_seconds == 0.0
    assert (s.fanout_readers, s.peer_listen, s.peer_url) == (2, "10.1.0.5:7070", "http://gpu-01.fabric:7070")
    assert s.fanout_per_holder == 3
    assert (s.peer_secret_file, s.peer_bandwidth_limit) == (Path("/run/sg/peer-secret"), 4 << 20)
    assert s.peer_credential() == "a-peer-secret-of-sixteen+"  # the secret itself wins over its file
    assert all(s.from_environment(field) for field in Settings.model_fields)


@pytest.mark.parametrize(
    ("ttl", "maximum", "complaint"),
    [
        ("4x", None, "STAGEGATE_PIN_TTL must be a duration"),
        ("30s", None, "at least 1m"),
        ("-1h", None, "STAGEGATE_PIN_TTL must be a duration"),
        ("8d", None, "longer than STAGEGATE_PIN_TTL_MAX"),  # the default maximum is 7d
        ("2h", "1h", "longer than STAGEGATE_PIN_TTL_MAX"),
    ],
)
def test_a_bad_pin_ttl_is_named(
    monkeypatch: pytest.MonkeyPatch, ttl: str, maximum: str | None, complaint: str
) -> None:
    monkeypatch.setenv("STAGEGATE_PIN_TTL", ttl)
    if maximum is not None:
        monkeypatch.setenv("STAGEGATE_PIN_TTL_MAX", maximum)
    with pytest.raises(InvalidInputError, match=complaint):
        load_settings()


def test_an_empty_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGEGATE_LEASE_SECONDS", "")
    monkeypatch.setenv("STAGEGATE_DATABASE_URL", "")
    monkeypatch.setenv("STAGEGATE_TOKEN", "  ")
    s = load_settings()
    assert (s.lease_seconds, s.database_url, s.token) == (120.0, None, None)
    assert not s.from_environment("lease_seconds")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LEASE_SECONDS", "banana"),
        ("LEASE_SECONDS", "0"),
        ("LEASE_SECONDS", "inf"),
        ("DECISION_WAIT", "-1"),
        ("BATCH_MAX_FILES", "many"),
        ("FANOUT_PER_HOLDER", "0"),  # nobody could copy from a peer: say 0 readers instead
        ("BANDWIDTH_LIMIT", "5 parsecs"),
        ("BANDWIDTH_LIMIT", "0"),
        ("SCRUB_RATE", "fast"),
        ("SOURCE_SCHEMES", "file"),
        ("CHECKPOINT_EVENTS", "-1"),
        ("CHECKPOINT_ORIGIN", "my log"),
        ("CHECKPOINT_PUBLISH", "relative/file"),
        ("CHECKPOINT_PUBLISH", "s3:///no-bucket"),
        ("CHECKPOINT_RETENTION_DAYS", "0"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(PREFIX + name, value)
    with pytest.raises(InvalidInputError, match=PREFIX + name):
        load_settings().source_rules()


def test_shown_masks_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGEGATE_DATABASE_URL", "postgresql+psycopg://owner:pl4nted-pw@db:5432/ledger")
    monkeypatch.setenv("STAGEGATE_BROKER_URL", "redis://:br0ker-pw@redis:6379/0")
    monkeypatch.setenv("STAGEGATE_TOKEN", "sg_pl4nted-token")
    monkeypatch.setenv("STAGEGATE_CHECKPOINT_KEY", "PRIVATE+KEY+x+00000000+pl4nted-key")
    rows = {row.name: row for row in shown(load_settings())}
    text = repr(rows) + repr(load_settings())
    for secret in ("pl4nted-pw", "br0ker-pw", "sg_pl4nted-token", "pl4nted-key"):
        assert secret not in text
    assert rows["STAGEGATE_DATABASE_URL"].value == "postgresql+psycopg://owner:[redacted]@db:5432/ledger"
    assert rows["STAGEGATE_DATABASE_URL"].source == "environment"
    assert rows["STAGEGATE_HOME"].source == "default"
    assert set(rows) == {variable(field) for field in READERS}
    assert {"POD_UID", "KUBERNETES_SERVICE_HOST", "STAGEGATE_KUBE_API"} <= set(rows)


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("10.0.0.1", None, "https://10.0.0.1:443"),
        ("10.0.0.1", "6443", "https://10.0.0.1:6443"),
        ("fd00::1", "443", "https://[fd00::1]:443"),
        (None, "443", None),  # outside a cluster: no API, owned pins are kept
    ],
)
def test_the_in_cluster_kubernetes_api(
    monkeypatch: pytest.MonkeyPatch, host: str | None, port: str | None, url: str | None
) -> None:
    for name, value in (("KUBERNETES_SERVICE_HOST", host), ("KUBERNETES_SERVICE_PORT", port)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("STAGEGATE_KUBE_API", raising=False)
    assert load_settings().kube_api_url() == url


@pytest.mark.parametrize("value", ["kube:6443", "https://user:pw@kube:6443", "file:///etc/passwd"])
def test_a_bad_kube_api_is_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("STAGEGATE_KUBE_API", value)
    with pytest.raises(
        InvalidInputError, match="STAGEGATE_KUBE_API must be the Kubernetes API's URL"
    ) as raised:
        load_settings()
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:p@h/db", "postgresql://u:[redacted]@h/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:[redacted]@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_mask_password(url: str, masked: str) -> None:
    assert mask_password(url) == masked
