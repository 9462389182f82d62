from pathlib import Path

import pytest

from stagegate.ledger.settings import ledger_url


def test_database_url_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STAGEGATE_DATABASE_URL", "postgresql+psycopg://u@db/ledger")
    monkeypatch.setenv("STAGEGATE_HOME", str(tmp_path / "home"))
    assert ledger_url() == "postgresql+psycopg://u@db/ledger"
    assert not (tmp_path / "home").exists()


def test_sqlite_in_stagegate_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STAGEGATE_DATABASE_URL", raising=False)
    monkeypatch.setenv("STAGEGATE_HOME", str(tmp_path / "a" / "b"))
    assert ledger_url() == f"sqlite:///{tmp_path / 'a' / 'b' / 'ledger.db'}"
    assert (tmp_path / "a" / "b").is_dir()


def test_default_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STAGEGATE_DATABASE_URL", raising=False)
    monkeypatch.delenv("STAGEGATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ledger_url() == f"sqlite:///{tmp_path / '.local/share/stagegate/ledger.db'}"
    assert (tmp_path / ".local/share/stagegate").is_dir()


def test_runtime_role_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from stagegate.ledger.settings import runtime_role

    monkeypatch.setenv("STAGEGATE_DB_RUNTIME_ROLE", "stagegate_app")
    assert runtime_role() == "stagegate_app"
    monkeypatch.setenv("STAGEGATE_DB_RUNTIME_ROLE", "")
    assert runtime_role() is None
    monkeypatch.delenv("STAGEGATE_DB_RUNTIME_ROLE")
    assert runtime_role() is None
