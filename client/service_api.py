"""The service half of the Python API: :class:`Client`, what ``stagegate stage --node``,
``status``, ``release``, ``renew``, ``list``, ``nodes``, ``egress --node``, ``usage`` and
``audit query|verify|head`` do against the service, as methods.

It is the CLI's own :class:`~stagegate.client.service_client.ServiceClient` underneath (one
HTTP client, one error mapping), plus what the commands add on top: the server and token from
the environment, waiting with progress, and an ending other than ready raised as the error
whose exit code the command would return.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from stagegate.client.embedded_api import egress_request
from stagegate.client.errors import (
    EgressDeniedError,
    EgressFailedError,
    StagingDeniedError,
    StagingFailedError,
)
from stagegate.client.progress_feed import ordered
from stagegate.client.service_client import ClosedOnExit, ServiceClient
from stagegate.client.service_models import Node, Staging
from stagegate.client.service_render import bar_progress, verdict
from stagegate.errors import InvalidInputError
from stagegate.ledger import AuditEvent
from stagegate.ledger.chain import format_head, parse_head
from stagegate.ledger.usage import UsageRow
from stagegate.owners import OwnerRef
from stagegate.progress import ProgressCallback
from stagegate.requests import BestMode
from stagegate.settings import env_name, load_settings
from stagegate.states import EgressState, StagingState

__all__ = ["Client", "check_ended"]

POLL_SECONDS = 1.0


def _message(lines: list[str]) -> str:
    # verdict() writes for stderr, after the program's name; an exception's message goes without it.
    return "\n".join(lines).removeprefix("stagegate: ")


def check_ended(staging: Staging) -> Staging:
    """``staging`` if it is ready (or still running); else the error whose exit code the CLI
    gives it: :class:`StagingDeniedError` (3) or :class:`StagingFailedError` (1)."""
    if staging.state == StagingState.DENIED:
        raise StagingDeniedError(_message(verdict(staging)), staging, staging.reasons)
    if staging.state in (StagingState.FAILED, StagingState.RELEASED):
        raise StagingFailedError(_message(verdict(staging)), staging)
    return staging


def _check_egress_ended(view: dict[str, Any]) -> dict[str, Any]:
    lines = [str(line) for line in [*view.get("reasons", []), *view.get("errors", [])]]
    what = f"egress {view.get('id')} {view.get('state')}"
    if view.get("state") == EgressState.DENIED:
        raise EgressDeniedError(_message([f"{what} by the policy", *(f"  {r}" for r in lines)]), view)
    if view.get("state") == EgressState.FAILED:
        raise EgressFailedError(_message([what, *(f"  {r}" for r in lines)]), view)
    return view


class Client(ClosedOnExit):
    """The stagegate service at ``url`` (default ``$STAGEGATE_URL``), authenticated by
    ``token`` (default ``$STAGEGATE_TOKEN``); every call acts with that token's rights.

    Errors are those of the CLI (``client/errors.py``): a policy denial
    :class:`StagingDeniedError` / :class:`EgressDeniedError`, another refusal of your role
    :class:`PermissionDeniedError`, someone else's or an unknown id
    :class:`stagegate.errors.NotFoundError`, a refused request
    :class:`stagegate.errors.InvalidInputError`, a missing or unknown token
    :class:`AuthenticationError`, an unreachable server :class:`ServiceUnavailableError`.
    Use it as a context manager, or call :meth:`close`. ``service`` is the underlying
    :class:`ServiceClient`, for the rest of the HTTP API (tokens, declassifications).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        poll: float = POLL_SECONDS,
    ) -> None:
        settings = load_settings()
        url = url or settings.url
        if not url:
            raise InvalidInputError(f"no server: pass url= or set {env_name('url')}")
        if token is None and settings.token is not None:
            token = settings.token.get_secret_value()
        if poll <= 0:
            raise InvalidInputError("poll must be positive")
        self._poll = poll
        # Without a token the service answers 401, raised as AuthenticationError naming STAGEGATE_TOKEN.
        self.service = ServiceClient(url, token, timeout=timeout)

    def __repr__(self) -> str:
        return f"Client({self.service.base_url!r})"

    def close(self) -> None:
        self.service.close()

    # -- stagings ------------------------------------------------------------------------------

    def stage(
        self,
        source: str,
        nodes: Iterable[str],
        *,
        mode: str = "replicate",
        job: str | None = None,
        idempotency_key: str | None = None,
        pin_ttl: float | None = None,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        owner: OwnerRef | None = None,
        wait: bool = True,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> Staging:
        """Ask the service to stage ``source`` onto the caches of ``nodes``:
        ``stagegate stage SOURCE --node N... [--wait]``.

        ``mode`` is ``"replicate"`` (every node gets it all) or ``"shard"``; ``pin_ttl``
        (seconds) how long the nodes hold it for you before the service releases it (default:
        the service's ``STAGEGATE_PIN_TTL``; :meth:`renew` extends it); the same
        ``idempotency_key`` again returns the first staging. ``include``/``exclude`` choose which
        keys of the source are staged (rclone's glob rules, as :func:`stagegate.stage`);
        ``owner`` (a :class:`stagegate.owners.OwnerRef`) is the Kubernetes Pod or Job whose end
        releases it. With ``wait`` (the default),
        returns once it is ready (each node's ``path`` in ``.nodes``) and passes
        :class:`stagegate.progress.Progress` snapshots to ``progress`` as it goes; without,
        returns the staging as submitted.

        Raises :class:`StagingDeniedError` when the policy refuses (nothing moved),
        :class:`StagingFailedError` when it fails or is released while waited for, and
        :class:`WaitTimeoutError` after ``timeout`` seconds (the staging goes on).
        """
        staging = self.service.submit_staging(
            source,
            nodes,
            mode=mode,
            job=job,
            idempotency_key=idempotency_key,
            pin_ttl=pin_ttl,
            include=include,
            exclude=exclude,
            owner=owner,
        )
        if not wait:
            return check_ended(staging)
        return self.wait(staging.id, timeout=timeout, progress=progress)

    def wait(
        self, id: str, timeout: float | None = None, progress: ProgressCallback | None = None
    ) -> Staging:
        """Follow the staging ``id`` until it ends (``stagegate status ID --watch``) and return it
        ready; ``progress`` gets a snapshot per change while it transfers. Raises as
        :meth:`stage` does."""
        feed = ordered(progress)

        def update(staging: Staging) -> None:
            drawn = bar_progress(staging)
            if feed is not None and drawn is not None:
                feed(drawn[0])

        return check_ended(self.service.wait(id, on_update=update, poll=self._poll, timeout=timeout))

    def status(self, id: str) -> Staging:
        """The staging ``id`` as it is now, whatever its state (``stagegate status ID``)."""
        return self.service.staging(id)

    def release(self, id: str) -> Staging:
        """Release the staging ``id`` (stop it if running, unpin its data so the nodes may evict
        it): ``stagegate release ID``. Only its owner or an admin may; releasing twice is harmless."""
        return self.service.release(id)

    def renew(self, id: str, pin_ttl: float | None = None) -> Staging:
        """Extend the staging's pin lease to now + ``pin_ttl`` seconds (default: the TTL it had):
        ``stagegate renew ID``."""
        return self.service.renew(id, pin_ttl)

    def nodes(self) -> list[Node]:
        """Every node worker with its cache (``stagegate nodes``)."""
        return self.service.nodes()

    # -- egress --------------------------------------------------------------------------------

    def egress(
        self,
        run_dir: str,
        to: str,
        *,
        node: str,
        latest: int | None = None,
        best: str | None = None,
        mode: BestMode | None = None,
        names: Iterable[str] = (),
        job: str | None = None,
        delete_unselected: bool = False,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Ask ``node``'s worker to egress the selected checkpoints of ``run_dir`` (an absolute
        path on that node, below the runs root the service allows you) to ``to``:
        ``stagegate egress RUN_DIR --to DEST --node NODE [--wait]``. Selection as in
        :func:`stagegate.egress`. Returns the service's view of the egress (``id``, ``state``,
        ``selected``, ``files``, ``bytes``, ...), completed with ``wait``.

        Raises :class:`EgressDeniedError` when the policy refuses, :class:`EgressFailedError`
        when it fails, :class:`WaitTimeoutError` after ``timeout`` seconds.
        """
        from stagegate.workers.egress import check_selection

        request = egress_request(
            run_dir,
            to,
            latest=latest,
            best=best,
            mode=mode,
            names=names,
            job=job,
            delete_unselected=delete_unselected,
            node=node,
            include=include,
            exclude=exclude,
        )
        check_selection(request)  # what the CLI refuses before asking; the worker applies it too
        egress_id = self.service.submit_egress(request)
        if not wait:
            return self.service.egress(egress_id)
        return _check_egress_ended(self.service.wait_egress(egress_id, poll=self._poll, timeout=timeout))

    # -- reading the trail ---------------------------------------------------------------------

    def usage(
        self,
        by: str = "user",
        period: str = "month",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[UsageRow]:
        """Chargeback rows (auditor or admin), as ``stagegate usage --server`` shows them."""
        return self.service.usage(by, period, since, until)

    def audit(self, **filters: str | int | datetime | None) -> list[AuditEvent]:
        """Audit events (auditor or admin) matching ``actor``, ``action``, ``job``, ``since``,
        ``until`` and ``limit``, oldest first."""
        return self.service.audit(**filters)

    def audit_head(self) -> str:
        """The newest event's ``SEQ:HASH`` on the service (auditor or admin), as ``stagegate audit
        head`` prints it: keep it where the database's owner cannot edit it, and pass it to
        :meth:`verify_audit` later."""
        return format_head(self.service.audit_head())

    def verify_audit(self, head: str | None = None) -> dict[str, Any]:
        """The service's walk of the whole audit chain: ``{"ok", "checked", "head", "problem"}``
        (``stagegate audit verify``); with ``head`` (a :meth:`audit_head` kept earlier) events cut
        off the end are caught too. A ``head`` that is not ``SEQ:HASH`` raises
        :class:`stagegate.errors.InvalidInputError`."""
        return self.service.verify_audit(None if head is None else parse_head(head))

    # Last: a method named ``list`` would shadow the type in the annotations after it.
    def list(self, state: str | None = None, limit: int | None = None) -> list[Staging]:
        """Your stagings, newest first (an auditor's or admin's: everyone's); ``stagegate list``."""
        return self.service.stagings(state=state, limit=limit)
