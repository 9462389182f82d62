"""Every ``STAGEGATE_*`` setting, read from the environment in one place.

:func:`load_settings` is the only reader of these variables: the API, the node workers and
the CLI each take what they need from the :class:`Settings` it returns. An empty variable
counts as unset. A bad value is an :class:`~stagegate.errors.InvalidInputError` naming the
variable and what it should look like. Settings are read afresh on every call (cheap), so a
process always sees its environment as it is.
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stagegate.confinement import SourceRules
from stagegate.durations import HINT as DURATION_HINT
from stagegate.durations import parse_duration
from stagegate.errors import InvalidInputError
from stagegate.sizes import parse_size
from stagegate.urls import REDACTED

PREFIX = "STAGEGATE_"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_HOME = Path("~/.local/share/stagegate")
# The scrub re-reads cached datasets in the background: slow enough not to compete with
# staging for the NVMe, and each dataset at most once a day.
DEFAULT_LEASE_SECONDS = 120.0
DEFAULT_RECONCILE_SECONDS = 10.0
DEFAULT_BATCH_MAX_FILES = 1000
DEFAULT_BATCH_MAX_BYTES = 1 << 30
DEFAULT_SCRUB_RATE = 20 << 20
DEFAULT_SCRUB_INTERVAL = 86400.0
# Identical staging requests share one plan while it runs and this long after: a burst of
# init containers lists the source once. Within the window a changed source is not listed
# again (a new object is missed, a changed one fails its If-Match GET); 0 shares only plans
# still running.
DEFAULT_PLAN_FRESH_SECONDS = 30.0
# A shared plan used within this long is listed again in the background every half window
# (workers.plan_recheck) and stays fresh while its source is unchanged: a cache hit follows it
# instead of listing, whatever the object count (0: off, a hit after the window lists).
DEFAULT_PLAN_KEEP_WARM_SECONDS = 600.0

# Nodes of a replicated staging that read each batch from the source; the others copy it from
# a peer that has it verified (stagegate.ledger.fanout). 0: every node reads the source.
DEFAULT_FANOUT_READERS = 1
# Copies of one batch from peers in flight per node holding it verified: the others wait for
# the next holder, so the batch spreads as a tree (each receiver serving the next ones) instead
# of every receiver asking the readers at once.
DEFAULT_FANOUT_PER_HOLDER = 2
# The label re-scan re-reads cached datasets' label files and object tags (S3 HEADs, a tag
# request only for tagged objects) at this many requests a second (0: off), each dataset at
# most once an interval: a label raised at the source quarantines its cached copies within it.
DEFAULT_LABEL_RESCAN_RATE = 50.0
DEFAULT_LABEL_RESCAN_INTERVAL = 3600.0
# Signed checkpoints of the audit trail: often enough that little is ever unsigned, rarely
# enough that the checkpoint log stays small. The origin names the log in every checkpoint.
DEFAULT_CHECKPOINT_EVENTS = 1000
DEFAULT_CHECKPOINT_SECONDS = 3600.0
DEFAULT_CHECKPOINT_ORIGIN = "stagegate.local/audit"
DEFAULT_CHECKPOINT_RETENTION_DAYS = 365
# A service staging's pins last this long unless the request asks for less (or more, up to the
# maximum): long enough for a day's training job, short enough that a forgotten pin frees its
# NVMe by the next day. Jobs that run longer renew (`stagegate renew`) or ask for more.
DEFAULT_PIN_TTL = 86400.0
DEFAULT_PIN_TTL_MAX = 7 * 86400.0
MIN_PIN_TTL = 60.0
# A pin owner (a Pod or Job) is asked after at most this often: a pod's end frees its pins within
# a minute or so, and a thousand owned stagings cost the Kubernetes API some 17 GETs a second.
DEFAULT_OWNER_CHECK_SECONDS = 60.0
# The in-cluster service account, as the kubelet mounts it into every pod that asks for it.
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

Reader = Literal["API", "worker", "CLI"]


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def variable(field: str) -> str:
    """The variable that sets ``field``: Kubernetes' own name for the few it defines (POD_UID)."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else env_name(field)


def _number(value: Any, info: ValidationInfo, *, zero_ok: bool = False) -> Any:
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        sign = "non-negative" if zero_ok else "positive"
        raise ValueError(f"{env_name(str(info.field_name))} must be a {sign} number, not {value!r}")
    return number


class Settings(BaseModel):
    """The effective settings. Field ``x`` is the variable ``STAGEGATE_X``.

    A plain model that :func:`load_settings` fills from the environment, as pydantic-settings'
    ``BaseSettings`` did for these scalar fields: importing pydantic-settings cost every
    ``stagegate`` process about 0.2 s of CPU, more than the rest of ``stagegate --help``.
    Defaults are validated too, as ``BaseSettings`` validates them.
    """

    model_config = ConfigDict(extra="ignore", validate_default=True)

    # Where the ledger lives (everyone): PostgreSQL in a deployment, else SQLite under home.
    database_url: SecretStr | None = None
    home: Path = DEFAULT_HOME
    db_runtime_role: str | None = None
    broker_url: SecretStr = SecretStr(DEFAULT_BROKER_URL)
    # The control plane's timing.
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    decision_wait: float = 10.0
    reconcile_seconds: float = DEFAULT_RECONCILE_SECONDS
    # A node worker's batches (the API cuts shared plans by them too), bandwidth and directories.
    batch_max_files: int = DEFAULT_BATCH_MAX_FILES
    batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES
    bandwidth_limit: int | None = None
    # Copy processes for small files (unset: one per four cores, at least 1; the CLI's too).
    copy_processes: int | None = None
    runs_root: Path | None = None
    egress_root: Path | None = None
    scrub_rate: int = DEFAULT_SCRUB_RATE
    scrub_interval: float = DEFAULT_SCRUB_INTERVAL
    plan_fresh_seconds: float = DEFAULT_PLAN_FRESH_SECONDS
    plan_keep_warm_seconds: float = DEFAULT_PLAN_KEEP_WARM_SECONDS
    label_rescan_rate: float = DEFAULT_LABEL_RESCAN_RATE
    label_rescan_interval: float = DEFAULT_LABEL_RESCAN_INTERVAL
    # Peer fan-out (see stagegate.workers.peer_server): source readers per replicated staging,
    # where this worker serves its verified batches (host:port; unset: it serves none), the URL
    # other nodes reach it at (default http://<peer_listen>), and the shared worker credential.
    fanout_readers: int = DEFAULT_FANOUT_READERS
    fanout_per_holder: int = DEFAULT_FANOUT_PER_HOLDER
    peer_listen: str | None = None
    peer_url: str | None = None
    peer_secret_file: Path | None = None
    peer_secret: SecretStr | None = Field(default=None, repr=False)
    # Bytes/s of copies from peers (the cluster fabric); STAGEGATE_BANDWIDTH_LIMIT caps source reads.
    peer_bandwidth_limit: int | None = None
    # What a service staging may read (see stagegate.confinement).
    source_roots: str | None = None
    source_schemes: str | None = None
    # How long a service staging's pins last (see stagegate.ledger.pins), as durations (4h, 2d).
    pin_ttl: float = DEFAULT_PIN_TTL
    pin_ttl_max: float = DEFAULT_PIN_TTL_MAX
    # Where a worker asks whether a pin's owner is still there (see stagegate.workers.owner_checks):
    # STAGEGATE_KUBE_API, else the in-cluster address Kubernetes puts in every pod's environment.
    kube_api: str | None = None
    kubernetes_service_host: str | None = Field(default=None, validation_alias="KUBERNETES_SERVICE_HOST")
    kubernetes_service_port: str | None = Field(default=None, validation_alias="KUBERNETES_SERVICE_PORT")
    kube_token_file: Path = SERVICE_ACCOUNT / "token"
    kube_ca_file: Path = SERVICE_ACCOUNT / "ca.crt"
    owner_check_seconds: float = DEFAULT_OWNER_CHECK_SECONDS
    # Per-owner read-only views of the datasets (see stagegate.workers.views): bind mounts, so only
    # a worker with CAP_SYS_ADMIN can keep them; off unless the operator says so.
    views: bool = False
    # The CLI's own pod, as the downward API gives it (stage --owner-from-env).
    pod_namespace: str | None = Field(default=None, validation_alias="POD_NAMESPACE")
    pod_name: str | None = Field(default=None, validation_alias="POD_NAME")
    pod_uid: str | None = Field(default=None, validation_alias="POD_UID")
    # Signed checkpoints of the audit trail (see stagegate.ledger.checkpoints).
    checkpoint_events: int = DEFAULT_CHECKPOINT_EVENTS
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS
    checkpoint_origin: str = DEFAULT_CHECKPOINT_ORIGIN
    checkpoint_key_file: Path | None = None
    checkpoint_key: SecretStr | None = Field(default=None, repr=False)
    checkpoint_publish: str | None = None
    checkpoint_retention_days: int = DEFAULT_CHECKPOINT_RETENTION_DAYS
    # The policy file (the workers apply it; the CLI in embedded mode; the API follows shared
    # plans only under the same one) and the CLI's service.
    policy: Path | None = None
    url: str | None = None
    token: SecretStr | None = Field(default=None, repr=False)

    @field_validator(
        "lease_seconds",
        "reconcile_seconds",
        "scrub_interval",
        "owner_check_seconds",
        "label_rescan_interval",
        mode="before",
    )
    @classmethod
    def _positive_seconds(cls, value: Any, info: ValidationInfo) -> Any:
        return _number(value, info)

    @field_validator("pin_ttl", "pin_ttl_max", mode="before")
    @classmethod
    def _duration(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            try:
                value = parse_duration(value)
            except ValueError:
                value = -1.0
        if isinstance(value, int | float) and value < MIN_PIN_TTL:
            name = env_name(str(info.field_name))
            raise ValueError(f"{name} must be a duration of at least 1m ({DURATION_HINT})")
        return value

    @model_validator(mode="after")
    def _ttl_within_max(self) -> "Settings":
        if self.pin_ttl > self.pin_ttl_max:
            raise ValueError(
                f"{env_name('pin_ttl')} ({self.pin_ttl:g} s) is longer than {env_name('pin_ttl_max')} "
                f"({self.pin_ttl_max:g} s): the default may not exceed the maximum"
            )
        return self

    @field_validator(
        "decision_wait", "plan_fresh_seconds", "plan_keep_warm_seconds", "label_rescan_rate", mode="before"
    )
    @classmethod
    def _wait(cls, value: Any, info: ValidationInfo) -> Any:
        return _number(value, info, zero_ok=True)

    @field_validator(
        "batch_max_files",
        "batch_max_bytes",
        "checkpoint_retention_days",
        "copy_processes",
        "fanout_per_holder",
        mode="before",
    )
    @classmethod
    def _count(cls, value: Any, info: ValidationInfo) -> Any:
        number = _number(value, info)
        return int(number) if isinstance(number, float) else number

    @field_validator("checkpoint_events", "fanout_readers", mode="before")
    @classmethod
    def _count_or_off(cls, value: Any, info: ValidationInfo) -> Any:
        number = _number(value, info, zero_ok=True)
        return int(number) if isinstance(number, float) else number

    @field_validator("checkpoint_seconds", mode="before")
    @classmethod
    def _seconds_or_off(cls, value: Any, info: ValidationInfo) -> Any:
        return _number(value, info, zero_ok=True)

    @field_validator("checkpoint_origin")
    @classmethod
    def _origin(cls, value: str, info: ValidationInfo) -> str:
        # The origin is also the signing key's name, which signed-note keeps free of spaces and '+'.
        if not value or any(c.isspace() or c == "+" for c in value):
            name = env_name(str(info.field_name))
            raise ValueError(
                f"{name} must be a name without spaces or '+' (e.g. example.org/audit), not {value!r}"
            )
        return value

    @field_validator("checkpoint_publish")
    @classmethod
    def _publish(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        bucket = value.removeprefix("s3://").partition("/")[0] if value.startswith("s3://") else None
        if bucket == "" or (bucket is None and not value.startswith("/")) or "@" in value:
            name = env_name(str(info.field_name))
            raise ValueError(
                f"{name} must be s3://BUCKET[/PREFIX] or an absolute path to a file, not {value!r}"
            )
        return value

    @field_validator("bandwidth_limit", "peer_bandwidth_limit", mode="before")
    @classmethod
    def _size(cls, value: Any, info: ValidationInfo) -> Any:
        """Written as for ``--bandwidth``: ``600KB``, ``4MiB`` (bytes per second)."""
        if not isinstance(value, str):
            return value
        try:
            size = parse_size(value)
        except ValueError:
            size = 0
        if size < 1:
            raise ValueError(
                f"{env_name(str(info.field_name))} must be a size such as 600KB or 4MiB, not {value!r}"
            )
        return size

    @field_validator("scrub_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any, info: ValidationInfo) -> Any:
        """Bytes per second such as ``20MiB``; 0 turns the scrub off."""
        if not isinstance(value, str):
            return value
        try:
            return parse_size(value)
        except ValueError:
            name = env_name(str(info.field_name))
            example = "a size per second such as 20MiB (0: off)"
            raise ValueError(f"{name} must be {example}, not {value!r}") from None

    @field_validator("token", mode="before")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("peer_listen")
    @classmethod
    def _listen(cls, value: str | None, info: ValidationInfo) -> str | None:
        host, colon, port = (value or "").rpartition(":")
        if value is not None and (not colon or not host or not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError(f"{env_name(str(info.field_name))} must be HOST:PORT, not {value!r}")
        return value

    @field_validator("peer_url")
    @classmethod
    def _peer_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (not value.startswith(("http://", "https://")) or "@" in value):
            name = env_name(str(info.field_name))
            raise ValueError(f"{name} must be http(s)://HOST:PORT without credentials")
        return value.rstrip("/") if value else value

    def peer_credential(self) -> str | None:
        """The worker credential peers present to each other: STAGEGATE_PEER_SECRET, else the
        first line of STAGEGATE_PEER_SECRET_FILE; None if neither is set."""
        if self.peer_secret is not None:
            secret = self.peer_secret.get_secret_value().strip()
        elif self.peer_secret_file is not None:
            try:
                secret = self.peer_secret_file.read_text().strip()
            except OSError as exc:
                raise InvalidInputError(
                    f"{env_name('peer_secret_file')}: cannot read {self.peer_secret_file}: {exc.strerror}"
                ) from None
        else:
            return None
        if len(secret) < 16:
            raise InvalidInputError("the peer secret must be at least 16 characters")
        return secret

    @field_validator("kube_api")
    @classmethod
    def _kube_api(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (not value.startswith(("https://", "http://")) or "@" in value):
            name = env_name(str(info.field_name))
            shown = (
                "a URL with credentials" if "@" in value else repr(value)
            )  # the worker's token is the credential
            raise ValueError(f"{name} must be the Kubernetes API's URL (https://HOST:PORT), not {shown}")
        return value.rstrip("/") if value else value

    def kube_api_url(self) -> str | None:
        """The Kubernetes API a worker asks about pin owners: STAGEGATE_KUBE_API, else the
        in-cluster one; None outside a cluster (owned pins are then kept, never released)."""
        if self.kube_api:
            return self.kube_api
        host, port = self.kubernetes_service_host, self.kubernetes_service_port or "443"
        if not host:
            return None
        return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"

    def source_rules(self) -> SourceRules:
        return SourceRules.parse(self.source_roots, self.source_schemes)

    def from_environment(self, field: str) -> bool:
        """True if ``field`` was set by its variable, False if it has its default."""
        return field in self.model_fields_set


def environment_without_settings() -> dict[str, str]:
    """This process's environment less every ``STAGEGATE_*`` variable: what a copy process
    (:mod:`transfer.copy_processes`) gets, which needs the AWS chain's variables, never the
    ledger's or broker's URL or the peer credential."""
    return {name: value for name, value in os.environ.items() if not name.startswith(PREFIX)}


def adopt_environment(environment: dict[str, str]) -> None:
    """Make ``environment`` this process's whole environment (a copy process, as it starts)."""
    os.environ.clear()
    os.environ.update(environment)


def _from_environment() -> dict[str, str]:
    """Each setting's variable that is set, keyed as :class:`Settings` takes it (the field's
    name, or its alias): names match whatever their case and an empty value counts as unset,
    as they did under ``BaseSettings``."""
    present = {name.lower(): value for name, value in os.environ.items() if value}
    values = {}
    for field, info in Settings.model_fields.items():
        value = present.get(variable(field).lower())
        if value is not None:
            values[info.validation_alias if isinstance(info.validation_alias, str) else field] = value
    return values


def load_settings() -> Settings:
    """The settings as the environment gives them now."""
    try:
        return Settings.model_validate(_from_environment())
    except ValidationError as exc:
        raise InvalidInputError("; ".join(_message(e) for e in exc.errors())) from None


def _message(error: Any) -> str:
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)
    name = env_name(str(error["loc"][0])) if error.get("loc") else "a STAGEGATE_ variable"
    return f"{name}: {error['msg']} (got {error.get('input')!r})"


# What cuts a shared plan (its key: the policy version and the batch sizes) and how long it is
# fresh. The API follows a fresh plan at submission only under the key the workers would give
# it (ledger.submit_follow), so a deployment gives both the same values of these.
PLAN_CUT_FIELDS = ("policy", "batch_max_files", "batch_max_bytes", "plan_fresh_seconds")


# -- what `stagegate config` shows ------------------------------------------------------------

READERS: dict[str, tuple[Reader, ...]] = {
    "database_url": ("API", "worker", "CLI"),
    "home": ("API", "worker", "CLI"),
    "db_runtime_role": ("CLI",),
    "broker_url": ("API", "worker"),
    "lease_seconds": ("API", "worker"),
    "decision_wait": ("API",),
    "reconcile_seconds": ("worker",),
    "batch_max_files": ("API", "worker"),
    "batch_max_bytes": ("API", "worker"),
    "bandwidth_limit": ("worker",),
    "copy_processes": ("worker", "CLI"),
    "runs_root": ("worker",),
    "egress_root": ("worker",),
    "scrub_rate": ("worker",),
    "scrub_interval": ("worker",),
    "plan_fresh_seconds": ("API", "worker"),
    "plan_keep_warm_seconds": ("worker",),
    "label_rescan_rate": ("worker",),
    "label_rescan_interval": ("worker",),
    "fanout_readers": ("worker",),
    "fanout_per_holder": ("worker",),
    "peer_listen": ("worker",),
    "peer_url": ("worker",),
    "peer_secret_file": ("worker",),
    "peer_secret": ("worker",),
    "peer_bandwidth_limit": ("worker",),
    "source_roots": ("API", "worker"),
    "source_schemes": ("API", "worker"),
    "pin_ttl": ("API",),
    "pin_ttl_max": ("API",),
    "kube_api": ("worker",),
    "kubernetes_service_host": ("worker",),
    "kubernetes_service_port": ("worker",),
    "kube_token_file": ("worker",),
    "kube_ca_file": ("worker",),
    "owner_check_seconds": ("worker",),
    "views": ("worker",),
    "pod_namespace": ("CLI",),
    "pod_name": ("CLI",),
    "pod_uid": ("CLI",),
    "checkpoint_events": ("worker", "CLI"),
    "checkpoint_seconds": ("worker", "CLI"),
    "checkpoint_origin": ("worker", "CLI"),
    "checkpoint_key_file": ("worker", "CLI"),
    "checkpoint_key": ("worker", "CLI"),
    "checkpoint_publish": ("worker", "CLI"),
    "checkpoint_retention_days": ("worker", "CLI"),
    "policy": ("API", "worker", "CLI"),
    "url": ("CLI",),
    "token": ("CLI",),
}


@dataclass(frozen=True, slots=True)
class ShownSetting:
    name: str  # the variable
    value: str  # secrets masked; "" for unset
    source: Literal["environment", "default"]
    readers: tuple[Reader, ...]


def shown(settings: Settings) -> list[ShownSetting]:
    """Every setting as ``stagegate config`` prints it, with no secret in it: the token is
    masked whole, a URL loses its password."""
    out = []
    for field in Settings.model_fields:
        value = getattr(settings, field)
        if field in ("token", "checkpoint_key", "peer_secret"):
            text = REDACTED if value is not None else ""
        elif isinstance(value, SecretStr):
            text = mask_password(value.get_secret_value())
        elif field == "url" and value is not None:
            text = mask_password(value)  # the client refuses one with credentials; never echo them
        else:
            text = "" if value is None else str(value)
        source: Literal["environment", "default"] = (
            "environment" if settings.from_environment(field) else "default"
        )
        out.append(ShownSetting(variable(field), text, source, READERS[field]))
    return out


def mask_password(url: str) -> str:
    """``url`` with the password in its user-info (``user:secret@host``) replaced."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{':' + REDACTED if colon else ''}@{host}"


def aws_environment() -> tuple[tuple[str, str], ...]:
    """The ``AWS_*`` variables, sorted: boto3 reads them itself (credentials, region, endpoint),
    so they are what an S3 session made now depends on (``transfer.sources.s3`` keys its
    sessions by them)."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
