"""What signed checkpoints cost on a long audit trail: signing, proofs and the auditor's check.

    python -m bench.audit_tree [--events 1000000] [--dir /tmp/...] [--pg URL]

Fills a fresh SQLite ledger (or, with --pg, a PostgreSQL database) with N chained events
(written in bulk, hashed exactly as the trail hashes them), then times, each in this one
process: the first checkpoint (the tree built from nothing, in batches), a second one after
1,000 more events (the incremental case), an inclusion proof (O(log n) stored subtrees), and
the whole-trail check of `audit verify --checkpoint`. Peak memory is the process's max RSS
after each step (the bulk fill runs in a child process), so a step that held the log in
memory would show.
"""

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import sqlalchemy as sa

from stagegate.ledger import AuditEvent, open_ledger
from stagegate.ledger.chain import GENESIS_HASH, canonical_json, event_hash
from stagegate.ledger.checkpoints import Checkpoints
from stagegate.ledger.log_check import check_log
from stagegate.ledger.models import AuditEventRow
from stagegate.ledger.proof_bundle import check_bundle
from stagegate.ledger.signed_note import SignerKey

ORIGIN = "bench.local/audit"
CHUNK = 20_000


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill(url: str, start: int, count: int, prev: str) -> str:
    """Append ``count`` events after seq ``start`` in bulk; returns the last hash."""
    engine = sa.create_engine(url)
    table = cast(sa.Table, AuditEventRow.__table__)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    try:
        for seq in range(start + 1, start + count + 1):
            event = AuditEvent(
                seq=seq, time=base + timedelta(milliseconds=seq), actor=f"user{seq % 50}", role="scientist",
                action="stage.completed", job_id=None, job_ref=f"train-{seq % 997}",
                source=f"s3://datasets/set-{seq % 313}/", destination=f"/nvme/set-{seq % 313}",
                bytes=seq * 4096, files=seq % 1000, manifest_digest=None, policy_version=None,
                decision=None, reasons=(), details={"node": f"gpu-{seq % 8}"}, prev_hash=prev, hash="",
            )  # fmt: skip
            event = replace(event, hash=event_hash(prev, event.hashed_fields()))
            prev = event.hash
            rows.append(
                {
                    **{
                        k: getattr(event, k) for k in event.hashed_fields() if k not in ("reasons", "details")
                    },
                    "time": event.time,
                    "reasons": canonical_json([]),
                    "details": canonical_json(dict(event.details)),
                    "hash": event.hash,
                }
            )
            if len(rows) == CHUNK:
                with engine.begin() as conn:
                    conn.execute(sa.insert(table), rows)
                rows = []
        if rows:
            with engine.begin() as conn:
                conn.execute(sa.insert(table), rows)
    finally:
        engine.dispose()
    return prev


def fill_apart(url: str, start: int, count: int, prev: str) -> str:
    """:func:`fill` in a child process, so this process's peak memory is the steps' alone."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return str(pool.apply(fill, (url, start, count, prev)))


def timed(what: str, results: dict[str, object], fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    out = fn()
    results[what] = {"seconds": round(time.perf_counter() - started, 3), "max_rss_mib": round(rss_mib(), 1)}
    print(f"{what}: {results[what]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument(
        "--pg", default=None, help="A PostgreSQL URL of an empty database, instead of SQLite."
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sg-bench-audit-", dir=args.dir))
    url = args.pg or f"sqlite:///{workdir / 'ledger.db'}"
    open_ledger(url).close()  # migrate
    results: dict[str, object] = {"events": args.events, "backend": url.split(":", 1)[0]}
    prev = timed("fill (in a child process)", results, lambda: fill_apart(url, 0, args.events, GENESIS_HASH))
    key = SignerKey.generate(ORIGIN)
    with open_ledger(url) as ledger:
        checkpoints = Checkpoints(ledger, origin=ORIGIN, signer=lambda: key)
        first = timed("first checkpoint (tree from nothing)", results, checkpoints.sign)
        fill_apart(url, args.events, 1000, prev)
        second = timed("next checkpoint (+1,000 events)", results, checkpoints.sign)
        seq = args.events // 3
        bundle = timed("inclusion proof", results, lambda: checkpoints.inclusion(seq))
        check_bundle(bundle.to_json(), [key.verifier()], ORIGIN)
        results["proof hashes"] = len(bundle.proof)
        verdict = timed(
            "verify --checkpoint (whole trail read)",
            results,
            lambda: check_log(ledger, first.opened().checkpoint, second),
        )
        assert verdict.consistent, verdict.problems
    print(json.dumps(results))


if __name__ == "__main__":
    main()
