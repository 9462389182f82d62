"""The label files a plan read, kept so a copy batch on any node can check they still say
the same before it copies (a relabelled directory must not slip through mid-staging)."""

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select

from stagegate.ledger.database import Ledger
from stagegate.ledger.models import LabelFileRow


@dataclass(frozen=True, slots=True)
class LabelFileRecord:
    directory: str
    key: str
    size: int
    revision: str | None
    version: str | None
    mtime: float | None
    content: bytes


class LabelFiles:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def replace(self, job_id: str, records: Iterable[LabelFileRecord]) -> None:
        with self._ledger.sessions.begin() as session:
            session.execute(delete(LabelFileRow).where(LabelFileRow.job_id == job_id))
            session.add_all(
                LabelFileRow(
                    job_id=job_id,
                    directory=r.directory,
                    key=r.key,
                    size=r.size,
                    revision=r.revision,
                    version=r.version,
                    mtime=r.mtime,
                    content=r.content,
                )
                for r in records
            )

    def of_job(self, job_id: str) -> list[LabelFileRecord]:
        with self._ledger.read_session() as session, session.begin():
            rows = session.scalars(select(LabelFileRow).where(LabelFileRow.job_id == job_id))
            return [
                LabelFileRecord(r.directory, r.key, r.size, r.revision, r.version, r.mtime, r.content)
                for r in rows
            ]
