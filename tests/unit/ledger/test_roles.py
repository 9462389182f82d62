"""The runtime role's grants, as SQL: what each table gets, and that re-running converges."""

from stagegate.ledger.roles import APPEND_ONLY, READ_ONLY, READ_WRITE, grant_statements, table_privileges


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def test_the_audit_trail_is_append_only_and_the_schema_revision_read_only() -> None:
    assert table_privileges("audit_events") == APPEND_ONLY == ("SELECT", "INSERT")
    assert table_privileges("alembic_version") == READ_ONLY == ("SELECT",)
    # A table no list names (one a later migration adds) is read and written, never truncated.
    assert table_privileges("some_new_table") == READ_WRITE
    assert "TRUNCATE" not in READ_WRITE


def test_everything_is_revoked_before_anything_is_granted() -> None:
    statements = grant_statements(_quote, "public", "app", ["jobs", "audit_events"], ["s1"])
    revokes = [i for i, s in enumerate(statements) if s.startswith("REVOKE")]
    grants = [i for i, s in enumerate(statements) if s.startswith("GRANT") and " ON SCHEMA " not in s]
    assert revokes and grants and max(revokes) < min(grants)
    assert 'REVOKE ALL ON ALL TABLES IN SCHEMA "public" FROM "app"' in statements
    assert 'REVOKE ALL ON ALL TABLES IN SCHEMA "public" FROM PUBLIC' in statements
    assert 'GRANT SELECT, INSERT ON "public"."audit_events" TO "app"' in statements
    assert 'GRANT SELECT, INSERT, UPDATE, DELETE ON "public"."jobs" TO "app"' in statements
    assert 'GRANT USAGE, SELECT ON SEQUENCE "public"."s1" TO "app"' in statements


def test_names_are_quoted_by_the_dialect_not_pasted() -> None:
    statements = grant_statements(_quote, "public", 'a"b', ['t"; DROP TABLE x; --'], [])
    assert 'GRANT SELECT, INSERT, UPDATE, DELETE ON "public"."t""; DROP TABLE x; --" TO "a""b"' in statements


def test_the_same_tables_in_any_order_give_the_same_statements() -> None:
    one = grant_statements(_quote, "s", "r", ["b", "a", "audit_events"], ["y", "x"])
    two = grant_statements(_quote, "s", "r", ["audit_events", "a", "b"], ["x", "y"])
    assert one == two
