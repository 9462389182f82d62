"""Which project each job belongs to: a read query for pages that filter the trail by project."""

from collections.abc import Iterable

from sqlalchemy import select

from stagegate.ledger.database import Ledger
from stagegate.ledger.models import JobRow


def projects_of(ledger: Ledger, job_ids: Iterable[str]) -> dict[str, str | None]:
    """``jobs.project`` of each id that names a job (ids naming none are left out)."""
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    with ledger.read_session() as session, session.begin():
        rows = session.execute(select(JobRow.id, JobRow.project).where(JobRow.id.in_(wanted)))
        return {job_id: project for job_id, project in rows}
