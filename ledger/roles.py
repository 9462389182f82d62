"""The two database roles of a PostgreSQL ledger, and the grants that keep the runtime one
from rewriting history.

The owner role runs the migrations and owns every table. The runtime role (the API and the
workers) gets only what the code uses: on the audit trail INSERT and SELECT. With no UPDATE,
DELETE, TRUNCATE or TRIGGER and no ownership it can neither edit a row nor ALTER, DISABLE or
DROP the triggers that refuse edits (only a table's owner may). The grants are computed from
the live catalogue each time ``stagegate db upgrade`` runs, so tables added by later
migrations are covered without a list to keep in step.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from stagegate.errors import InvalidInputError

# Tables whose rows, once written, nobody changes: the runtime role appends and reads.
# The checkpoints and the tree they sign are append-only too (see ``ledger.checkpoints``).
APPEND_ONLY_TABLES = frozenset({"audit_events", "declassifications", "audit_tree_nodes", "audit_checkpoints"})
# Alembic's bookkeeping: the runtime role reads it to learn whether the schema is current.
READ_ONLY_TABLES = frozenset({"alembic_version"})
APPEND_ONLY = ("SELECT", "INSERT")
READ_ONLY = ("SELECT",)
READ_WRITE = ("SELECT", "INSERT", "UPDATE", "DELETE")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT")
# What would let the runtime role change the trail other than by appending to it.
_FORBIDDEN_ON_APPEND_ONLY = ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER")
# Plain lower-case names: they need no quoting in the SQL an operator writes to create them.
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class RuntimeRoleError(InvalidInputError):
    """The runtime role named for the grants does not exist, or could do more than append to
    the audit trail whatever we grant (a superuser, the owner, a member of the owner)."""


@dataclass(frozen=True, slots=True)
class TableGrant:
    table: str
    privileges: tuple[str, ...]


def table_privileges(table: str) -> tuple[str, ...]:
    """What the runtime role may do on ``table``; every other table is read and written."""
    if table in APPEND_ONLY_TABLES:
        return APPEND_ONLY
    if table in READ_ONLY_TABLES:
        return READ_ONLY
    return READ_WRITE


def grant_statements(
    quote: Callable[[str], str], schema: str, role: str, tables: Iterable[str], sequences: Iterable[str]
) -> list[str]:
    """The SQL that leaves ``role`` with exactly :func:`table_privileges` on ``tables`` of
    ``schema`` (and USAGE on its sequences): everything is revoked first, so running it again,
    or after someone granted more by hand, ends in the same state."""
    s, r = quote(schema), quote(role)
    statements = [
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}",
        # Anything granted to PUBLIC the runtime role would hold too.
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM PUBLIC",
    ]
    statements += [
        f"GRANT {', '.join(table_privileges(table))} ON {s}.{quote(table)} TO {r}" for table in sorted(tables)
    ]
    on_sequences = ", ".join(SEQUENCE_PRIVILEGES)
    statements += [f"GRANT {on_sequences} ON SEQUENCE {s}.{quote(seq)} TO {r}" for seq in sorted(sequences)]
    return statements


def _refuse(role: str, why: str) -> RuntimeRoleError:
    return RuntimeRoleError(
        f"cannot use {role!r} as the runtime role: {why}. The API and workers need a role of their own "
        "that owns nothing (deploy/README.md shows the SQL to create it)"
    )


def check_runtime_role(conn: Connection, role: str) -> None:
    """Refuse a runtime role that could disarm the audit trail whatever is granted to it."""
    if not _ROLE_NAME.fullmatch(role):
        raise RuntimeRoleError(
            f"runtime role {role!r} is not a plain PostgreSQL role name: use lower-case letters, digits "
            "and underscores, starting with a letter or underscore"
        )
    row = conn.execute(
        text(
            "SELECT r.rolsuper, r.rolname = current_user, pg_has_role(:role, current_user, 'USAGE'), "
            "pg_has_role(:role, 'pg_write_all_data', 'USAGE') FROM pg_roles r WHERE r.rolname = :role"
        ),
        {"role": role},
    ).one_or_none()
    if row is None:
        raise _refuse(role, "no such role exists")
    superuser, is_self, member_of_owner, writes_all = row
    if superuser:
        raise _refuse(role, "it is a superuser, which may alter any table")
    if is_self:
        raise _refuse(role, "it is the role running this upgrade, which owns the tables")
    if member_of_owner:
        raise _refuse(role, "it is a member of the role running this upgrade, so it acts as the owner")
    if writes_all:
        raise _refuse(role, "it is a member of pg_write_all_data, which may update and delete in any table")
    owned = (
        conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND pg_has_role(:role, tableowner, 'USAGE') ORDER BY tablename"
            ),
            {"role": role},
        )
        .scalars()
        .all()
    )
    if owned:
        raise _refuse(
            role,
            f"it owns (or acts as the owner of) {', '.join(owned)}; as a superuser run "
            f"`REASSIGN OWNED BY {role} TO <owner role>` in this database first",
        )


def _verify_append_only(conn: Connection, role: str, tables: Iterable[str]) -> None:
    """After granting: the role holds no right on an append-only table beyond INSERT and SELECT,
    however it came by it (a group it belongs to, say)."""
    # An older schema may not have every append-only table yet.
    for table in sorted(APPEND_ONLY_TABLES.intersection(tables)):
        held = [
            privilege
            for privilege in _FORBIDDEN_ON_APPEND_ONLY
            if conn.execute(
                text("SELECT has_table_privilege(:role, :table, :privilege)"),
                {"role": role, "table": table, "privilege": privilege},
            ).scalar_one()
        ]
        if held:
            raise _refuse(role, f"it still holds {', '.join(held)} on {table} through a role it belongs to")


def grant_runtime_role(conn: Connection, role: str) -> list[TableGrant]:
    """Grant ``role`` what the service needs on every table of the ledger's schema, and no
    more; returns what it now holds. Run by the owner, in the migration's transaction."""
    check_runtime_role(conn, role)
    quote = conn.dialect.identifier_preparer.quote
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    tables = (
        conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")
        )
        .scalars()
        .all()
    )
    sequences = (
        conn.execute(
            text("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() ORDER BY 1")
        )
        .scalars()
        .all()
    )
    for statement in grant_statements(quote, schema, role, tables, sequences):
        conn.exec_driver_sql(statement)
    _verify_append_only(conn, role, tables)
    return [TableGrant(table, table_privileges(table)) for table in tables]


def may_migrate(conn: Connection) -> bool:
    """Whether the connected role could bring this PostgreSQL schema to head: it owns the
    migrated tables (or is a superuser), or, on a new database, may create tables at all."""
    return bool(
        conn.execute(
            text(
                "SELECT CASE WHEN to_regclass('alembic_version') IS NULL "
                "THEN has_schema_privilege(current_schema(), 'CREATE') "
                "ELSE pg_has_role((SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename = 'alembic_version'), 'USAGE') END"
            )
        ).scalar()
    )
