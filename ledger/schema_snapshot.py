"""Regenerate (``--write``) or check (``--check``) ``ledger/sqlite_schema.sql``, the snapshot a
new SQLite ledger is created from, by running every migration on a scratch database::

    python -m stagegate.ledger.schema_snapshot --write
"""

import argparse
import sys
import tempfile
from pathlib import Path

from stagegate.ledger.database import create_ledger_engine
from stagegate.ledger.migrate import HEAD_REVISION, upgrade_with_alembic
from stagegate.ledger.sqlite_schema import SNAPSHOT, render


def migrated_snapshot() -> str:
    """The snapshot text of a SQLite database built by Alembic's migrations from nothing."""
    with tempfile.TemporaryDirectory(prefix="stagegate-schema-") as scratch:
        engine = create_ledger_engine(f"sqlite:///{Path(scratch) / 'ledger.db'}")
        try:
            with engine.begin() as conn:
                upgrade_with_alembic(conn)
            with engine.connect() as conn:
                return render(conn, HEAD_REVISION)
        finally:
            engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stagegate.ledger.schema_snapshot", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"rewrite {SNAPSHOT.name} from the migrations")
    action.add_argument("--check", action="store_true", help=f"exit 1 if {SNAPSHOT.name} is out of date")
    args = parser.parse_args(argv)
    fresh = migrated_snapshot()
    if args.write:
        SNAPSHOT.write_text(fresh, encoding="utf-8")
        print(f"wrote {SNAPSHOT} (schema revision {HEAD_REVISION})")
        return 0
    if SNAPSHOT.read_text(encoding="utf-8") != fresh:
        print(f"{SNAPSHOT} is out of date: run `python -m stagegate.ledger.schema_snapshot --write`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
