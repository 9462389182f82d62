"""Two PostgreSQL roles: the owner migrates, the runtime role (the API and workers) works the
ledger but cannot disarm the audit trail. On the real server, with roles made per test."""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command

from integration.postgres import TwoRoles, database_with_two_roles
from stagegate.ledger import AuditTrail, NewEvent, open_ledger
from stagegate.ledger.database import create_ledger_engine
from stagegate.ledger.migrate import HEAD_REVISION, SchemaNotCurrentError, alembic_config, upgrade_schema
from stagegate.ledger.roles import RuntimeRoleError, grant_runtime_role

INSUFFICIENT_PRIVILEGE = "42501"


@pytest.fixture
def roles(pg_admin: sa.Engine) -> Iterator[TwoRoles]:
    with database_with_two_roles(pg_admin) as two:
        yield two


def db_upgrade(url: str, runtime_role: str | None) -> None:
    engine = create_ledger_engine(url)
    try:
        upgrade_schema(engine, runtime_role)
    finally:
        engine.dispose()


@pytest.fixture
def upgraded(roles: TwoRoles) -> TwoRoles:
    """Migrated by the owner, with the runtime role granted, and one event in the trail."""
    db_upgrade(roles.owner_url, roles.runtime)
    with open_ledger(roles.runtime_url) as ledger:
        AuditTrail(ledger).append(NewEvent(actor="alice", role="scientist", action="stage.requested"))
    return roles


def _as(url: str, statement: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _triggers_enabled(url: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT tgname, tgenabled FROM pg_trigger "
                    "WHERE tgrelid = 'audit_events'::regclass AND NOT tgisinternal"
                )
            ).all()
    finally:
        engine.dispose()
    return {name: enabled for name, enabled in rows}


ATTACKS = {
    "disable-one-trigger": "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete",
    "disable-all-triggers": "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    "drop-trigger": "DROP TRIGGER audit_events_no_update_delete ON audit_events",
    "drop-truncate-trigger": "DROP TRIGGER audit_events_no_truncate ON audit_events",
    "replace-trigger-function": (
        "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
    ),
    "update": "UPDATE audit_events SET actor = 'mallory'",
    "delete": "DELETE FROM audit_events",
    "truncate": "TRUNCATE audit_events",
    "drop-table": "DROP TABLE audit_events",
    "triggers-off-for-the-session": "SET session_replication_role = replica",
    "rewind-the-schema-revision": "UPDATE alembic_version SET version_num = '0001'",
}


@pytest.mark.parametrize("statement", ATTACKS.values(), ids=ATTACKS.keys())
def test_the_runtime_role_cannot_disarm_or_rewrite_the_trail(upgraded: TwoRoles, statement: str) -> None:
    before = _triggers_enabled(upgraded.owner_url)
    with pytest.raises(sa.exc.DBAPIError) as refused:
        _as(upgraded.runtime_url, statement)
    assert getattr(refused.value.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE, refused.value
    assert (
        before
        == _triggers_enabled(upgraded.owner_url)
        == {
            "audit_events_no_update_delete": "O",  # O: enabled, fires in the default replication role
            "audit_events_no_truncate": "O",
        }
    )
    with open_ledger(upgraded.runtime_url) as ledger:
        trail = AuditTrail(ledger)
        assert [e.actor for e in trail.query()] == ["alice"]
        assert trail.verify().intact


def test_the_runtime_role_cannot_take_the_table_over(upgraded: TwoRoles) -> None:
    with pytest.raises(sa.exc.DBAPIError) as refused:
        _as(upgraded.runtime_url, f'ALTER TABLE audit_events OWNER TO "{upgraded.runtime}"')
    assert getattr(refused.value.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE


def test_the_runtime_role_appends_and_the_chain_verifies(upgraded: TwoRoles) -> None:
    with open_ledger(upgraded.runtime_url) as ledger:
        trail = AuditTrail(ledger)
        for i in range(3):
            trail.append(NewEvent(actor="bob", role="job", action="stage.completed", bytes=i, files=1))
        verdict = trail.verify()
        assert verdict.intact and verdict.checked == 4
        assert trail.head() is not None and trail.head()[0] == 4  # type: ignore[index]


def test_grants_are_exactly_what_the_service_needs(upgraded: TwoRoles) -> None:
    engine = sa.create_engine(upgraded.owner_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
                    "FROM information_schema.role_table_grants WHERE grantee = :role GROUP BY table_name"
                ),
                {"role": upgraded.runtime},
            ).all()
            tables = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    held = dict(rows)
    assert held.pop("audit_events") == "INSERT,SELECT"
    assert held.pop("declassifications") == "INSERT,SELECT", "a recorded declassification is never edited"
    assert held.pop("audit_checkpoints") == "INSERT,SELECT", "a signed checkpoint is never edited"
    assert held.pop("audit_tree_nodes") == "INSERT,SELECT", "nor a subtree a checkpoint signed"
    assert held.pop("alembic_version") == "SELECT"
    append_only = {"audit_events", "declassifications", "audit_checkpoints", "audit_tree_nodes"}
    assert set(held) == tables - append_only - {"alembic_version"}, "every other table, none missed"
    assert set(held.values()) == {"DELETE,INSERT,SELECT,UPDATE"}


def test_a_table_added_later_is_granted_by_the_next_upgrade(upgraded: TwoRoles) -> None:
    _as(upgraded.owner_url, "CREATE TABLE later_table (id integer PRIMARY KEY)")
    with pytest.raises(sa.exc.DBAPIError):
        _as(upgraded.runtime_url, "INSERT INTO later_table VALUES (1)")
    db_upgrade(upgraded.owner_url, upgraded.runtime)  # at head already: grants only, again
    _as(upgraded.runtime_url, "INSERT INTO later_table VALUES (1)")
    with pytest.raises(sa.exc.DBAPIError):
        _as(upgraded.runtime_url, "DELETE FROM audit_events")


def test_grants_given_by_hand_beyond_the_contract_are_taken_back(upgraded: TwoRoles) -> None:
    _as(upgraded.owner_url, f'GRANT UPDATE, DELETE, TRUNCATE ON audit_events TO "{upgraded.runtime}"')
    db_upgrade(upgraded.owner_url, upgraded.runtime)
    with pytest.raises(sa.exc.DBAPIError):
        _as(upgraded.runtime_url, "TRUNCATE audit_events")


def test_the_runtime_role_refuses_to_migrate_an_old_schema_and_names_the_fix(roles: TwoRoles) -> None:
    engine = create_ledger_engine(roles.owner_url)
    try:
        with engine.begin() as conn:  # an older release's upgrade: one revision behind head
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
            grant_runtime_role(conn, roles.runtime)
    finally:
        engine.dispose()

    with pytest.raises(SchemaNotCurrentError) as refused:
        open_ledger(roles.runtime_url)
    message = str(refused.value)
    assert "stagegate db upgrade" in message
    assert f"--runtime-role {roles.runtime}" in message
    assert "revision 0002" in message and HEAD_REVISION in message
    _, _, password_free = roles.runtime_url.partition("@")
    assert password_free not in message, "the message names no database URL"

    with open_ledger(roles.owner_url) as ledger, ledger.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION


def test_the_runtime_role_does_not_migrate_a_new_database(roles: TwoRoles) -> None:
    with pytest.raises(SchemaNotCurrentError, match=r"not migrated yet.*stagegate db upgrade"):
        open_ledger(roles.runtime_url)
    engine = sa.create_engine(roles.owner_url)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == [], "nothing half-made"
    finally:
        engine.dispose()


def test_the_owner_still_migrates_on_open_without_a_separate_step(roles: TwoRoles) -> None:
    """A one-role setup (a workstation on PostgreSQL) keeps working as before."""
    with open_ledger(roles.owner_url) as ledger:
        AuditTrail(ledger).append(NewEvent(actor="a", role="r", action="x"))
        assert AuditTrail(ledger).verify().intact


def test_the_runtime_role_cannot_run_the_upgrade(roles: TwoRoles) -> None:
    db_upgrade(roles.owner_url, None)
    with pytest.raises(SchemaNotCurrentError, match="does not own the ledger's schema"):
        db_upgrade(roles.runtime_url, None)


@pytest.mark.parametrize(
    ("who", "why"),
    [
        ("postgres", "superuser"),
        ("owner", "the role running this upgrade"),
        ("sg_no_such_role_h5", "no such role exists"),
        ("Mixed-Case", "not a plain PostgreSQL role name"),
    ],
)
def test_a_runtime_role_that_could_alter_the_trail_is_refused_and_nothing_changes(
    roles: TwoRoles, who: str, why: str
) -> None:
    role = roles.owner if who == "owner" else who
    with pytest.raises(RuntimeRoleError, match=why):
        db_upgrade(roles.owner_url, role)
    engine = sa.create_engine(roles.owner_url)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == [], "refused before anything was migrated"
    finally:
        engine.dispose()


def test_a_member_of_the_owner_role_is_refused(roles: TwoRoles, pg_admin: sa.Engine) -> None:
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'GRANT "{roles.owner}" TO "{roles.runtime}"'))
    with pytest.raises(RuntimeRoleError, match="member of the role running this upgrade"):
        db_upgrade(roles.owner_url, roles.runtime)


def test_a_runtime_role_owning_tables_is_refused_with_the_fix(roles: TwoRoles, pg_admin: sa.Engine) -> None:
    """The old single-role deployment: the service's role migrated and owns everything."""
    url = sa.make_url(roles.owner_url)
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{url.database}" OWNER TO "{roles.runtime}"'))
    db_upgrade(roles.runtime_url, None)
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{url.database}" OWNER TO "{roles.owner}"'))
    with pytest.raises(RuntimeRoleError, match=f"REASSIGN OWNED BY {roles.runtime}"):
        db_upgrade(roles.owner_url, roles.runtime)


def test_runtime_role_is_for_postgresql_only(tmp_path: object) -> None:
    with pytest.raises(RuntimeRoleError, match="PostgreSQL ledger only"):
        db_upgrade(f"sqlite:///{tmp_path}/ledger.db", "app")
