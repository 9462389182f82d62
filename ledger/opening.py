"""Opening the ledger: an engine for its URL, its schema brought to head, sessions bound to it."""

from sqlalchemy.orm import sessionmaker

from stagegate.ledger.database import Ledger, create_ledger_engine
from stagegate.ledger.migrate import upgrade_to_head
from stagegate.ledger.settings import ledger_url


def open_ledger(url: str | None = None) -> Ledger:
    """Open the ledger at ``url`` (default: :func:`ledger.settings.ledger_url`), first bringing
    its schema to the newest revision."""
    engine = create_ledger_engine(url or ledger_url())
    try:
        upgrade_to_head(engine)
    except BaseException:
        engine.dispose()
        raise
    return Ledger(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
