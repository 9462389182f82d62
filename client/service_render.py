"""Text for the service commands, from the service's typed answers. Pure: no I/O, and the
current time is passed in, so every line can be tested."""

from collections.abc import Sequence
from datetime import datetime

from stagegate.client.service_models import Node, NodeStaging, Pin, Staging
from stagegate.client.units import format_duration
from stagegate.durations import format_duration_short
from stagegate.progress import Progress
from stagegate.sizes import format_bytes
from stagegate.states import NodeStagingState, StagingState


def format_age(seconds: float | None) -> str:
    """How long ago, coarsely: ``4s ago``, ``12m ago``, ``3h ago``, ``2d ago``; ``never``."""
    if seconds is None:
        return "never"
    seconds = max(0, int(seconds))  # a clock a little ahead of ours is not the future
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _age(moment: datetime | None, now: datetime) -> str:
    return format_age(None if moment is None else (now - moment).total_seconds())


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]


def _fraction(done: int, total: int) -> str:
    return f"{done / total:.1%}" if total else "-"


def progress_line(s: Staging) -> str:
    """Bytes and files done of the total; rate and ETA while it is transferring."""
    p = s.progress
    parts = [
        f"{_fraction(p.bytes_done, p.bytes_total)}",
        f"{format_bytes(p.bytes_done)} / {format_bytes(p.bytes_total)}",
        f"files {p.files_done}/{p.files_total}",
    ]
    if s.state == StagingState.TRANSFERRING:
        if p.rate_bytes_per_s is not None:
            parts.append(f"{format_bytes(p.rate_bytes_per_s)}/s")
        if p.eta_seconds is not None:
            parts.append(f"ETA {format_duration(p.eta_seconds)}")
    return "  ".join(parts)


def node_state(n: NodeStaging) -> str:
    return f"{n.state} (cache hit)" if n.cache_hit else n.state


def render_status(s: Staging, now: datetime) -> str:
    """The one-shot summary of ``stagegate status``: what, how far, where, and why not."""
    lines = [f"staging {s.id}: {s.state}"]
    lines.append(f"  source    {s.source} ({s.mode})")
    who = f"  user      {s.user or '-'}"
    if s.project:
        who += f"  project {s.project}"
    if s.job:
        who += f"  job {s.job}"
    lines.append(who)
    lines.append(f"  progress  {progress_line(s)}")
    if s.digest:
        lines.append(f"  digest    {s.digest}")
    if s.updated_at is not None:
        lines.append(f"  updated   {_age(s.updated_at, now)}")
    if s.pin is not None and (not s.terminal or s.state == StagingState.READY):
        lines.append(f"  pinned    {pin_line(s.pin, now)}")
    if s.nodes:
        lines.append(f"  nodes     {s.nodes_ready}/{len(s.nodes)} ready")
        rows = [
            [
                n.node,
                node_state(n),
                f"{n.files_done}/{n.files_total}",
                f"{format_bytes(n.bytes_done)} / {format_bytes(n.bytes_total)}",
                n.path or "-",
            ]
            for n in s.nodes
        ]
        lines += table(["NODE", "STATE", "FILES", "BYTES", "PATH"], rows, indent="    ")
    if s.reasons:
        lines.append("  denied because:")
        lines += [f"    {r}" for r in s.reasons]
    if s.errors:
        lines.append("  errors:")
        lines += [f"    {e}" for e in s.errors]
    return "\n".join(lines)


def _size(n: int | None) -> str:
    return "unlimited" if n is None else format_bytes(n)


def render_nodes(nodes: Sequence[Node], now: datetime) -> str:
    """The table of ``stagegate nodes``; dead nodes are listed (and say so), not hidden."""
    if not nodes:
        return "no node has registered yet (start one with `stagegate worker --node NAME --root DIR`)"
    rows = [
        [
            n.name,
            "yes" if n.alive else "NO",
            _size(n.capacity),
            format_bytes(n.used),
            format_bytes(n.pinned),
            _size(n.free),
            str(len(n.datasets)),
            _age(n.last_heartbeat, now),
        ]
        for n in nodes
    ]
    headers = ["NODE", "ALIVE", "CAPACITY", "USED", "PINNED", "FREE", "DATASETS", "HEARTBEAT"]
    return "\n".join(table(headers, rows))


def render_submitted(s: Staging) -> str:
    """The one line ``stagegate stage`` prints without --wait: easy to cut the id from."""
    return f"{s.id} {s.state}"


def changes(before: Staging | None, after: Staging) -> list[str]:
    """Lines saying what changed between two looks at a staging: its state, each node's."""
    lines = []
    if before is None or before.state != after.state:
        lines.append(f"staging {after.id}: {after.state}")
    seen = {n.node: n for n in before.nodes} if before else {}
    for n in after.nodes:
        old = seen.get(n.node)
        if (old is None and n.state != NodeStagingState.PENDING) or (
            old is not None and node_state(old) != node_state(n)
        ):
            where = f" at {n.path}" if n.path and n.state == NodeStagingState.READY else ""
            lines.append(f"  {n.node}: {node_state(n)}{where}")
    return lines


def verdict(s: Staging) -> list[str]:
    """Why a finished staging is not ready, for stderr; nothing when it is ready."""
    if s.state == StagingState.DENIED:
        return [f"stagegate: staging {s.id} was denied by the policy:", *(f"  {r}" for r in s.reasons)]
    if s.state in (StagingState.FAILED, StagingState.RELEASED):
        failed_nodes = [f"  {n.node}: {n.state}" for n in s.nodes if n.state == NodeStagingState.FAILED]
        return [f"stagegate: staging {s.id} {s.state}", *(f"  {e}" for e in s.errors), *failed_nodes]
    return []


def bar_progress(s: Staging) -> tuple[Progress, str] | None:
    """What the progress bar draws for ``s``, with its note (nodes ready); None while there is
    nothing to measure yet (planning: no total, so a bar would read 100 %)."""
    p = s.progress
    if p.bytes_total <= 0 or s.state not in (StagingState.TRANSFERRING, StagingState.READY):
        return None
    progress = Progress(
        files_total=p.files_total, bytes_total=p.bytes_total, files_done=p.files_done, bytes_done=p.bytes_done
    )
    return progress, f"nodes {s.nodes_ready}/{len(s.nodes)} ready"


def pin_line(pin: Pin | None, now: datetime) -> str:
    """When the service releases the staging: ``until 2026-12-03 14:00 UTC (in 3h59m), TTL 4h``."""
    if pin is None or pin.expires_at is None:
        return "no lease (held until released)"
    left = (pin.expires_at - now).total_seconds()
    when = f"in {format_duration_short(left)}" if left > 0 else "due now"
    renewed = f", renewed {pin.renewals}x" if pin.renewals else ""
    return (
        f"until {pin.expires_at:%Y-%m-%d %H:%M:%S} UTC ({when}), TTL {format_duration_short(pin.ttl_seconds)}"
        f"{renewed}"
    )


def dead_node_warnings(names: Sequence[str], nodes: Sequence[Node], now: datetime) -> list[str]:
    """One line per node in ``names`` whose worker the service no longer hears from, in the
    order named."""
    known = {n.name: n for n in nodes}
    lines = []
    for name in dict.fromkeys(names):
        node = known.get(name)
        # A node never registered cannot be here: the service refuses a staging naming one.
        if node is not None and not node.alive:
            lines.append(
                f"node {name}'s worker last reported {_age(node.last_heartbeat, now)}: the staging is "
                f"recorded, but nothing moves on {name} until its worker is back (see `stagegate nodes`)"
            )
    return lines
