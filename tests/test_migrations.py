"""Alembic is the only way the schema is made: up, down, up again, and never drifting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from monitor.db.engine import (
    alembic_config,
    current,
    downgrade,
    ensure_schema,
    head_revision,
    make_engine,
    migrations_dir,
    upgrade,
)
from monitor.db.models import Base
from monitor.db.store import Store
from monitor.errors import StorageError

REPO = Path(__file__).resolve().parent.parent
APP_TABLES = {"items", "item_states", "sku_states", "tier_states", "polls", "changes"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _check(url: str) -> None:
    """``alembic check`` through the real env.py: raises if models and schema differ."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            command.check(alembic_config(conn))
    finally:
        engine.dispose()


def _normalized(where: object) -> str:
    text = str(getattr(where, "text", where)).lower()
    return re.sub(r"[\s()]", "", text)


def _partial_indexes_match(url: str) -> None:
    """Alembic does not compare partial-index predicates; compare them here."""
    engine = make_engine(url)
    dialect = engine.dialect.name
    try:
        inspector = sa.inspect(engine)
        for table in Base.metadata.sorted_tables:
            reflected = {ix["name"]: ix for ix in inspector.get_indexes(table.name)}
            for index in table.indexes:
                found = reflected[index.name]
                assert bool(found["unique"]) == index.unique, index.name
                expected = index.dialect_options[dialect]["where"]
                actual = found.get("dialect_options", {}).get(f"{dialect}_where")
                if expected is None:
                    assert actual is None, index.name
                else:
                    assert _normalized(actual) == _normalized(expected), index.name
    finally:
        engine.dispose()


def test_migrations_are_found_without_alembic_ini() -> None:
    folder = migrations_dir()
    assert folder == REPO / "migrations"
    assert (folder / "env.py").is_file()
    newest = max(p.name.split("_")[0] for p in (folder / "versions").glob("[0-9]*.py"))
    assert head_revision() == newest


def test_upgrade_check_downgrade_upgrade(db_url: str) -> None:
    assert current(db_url) is None
    upgrade(db_url)
    assert current(db_url) == head_revision()
    assert _tables(db_url) >= APP_TABLES
    _check(db_url)
    _partial_indexes_match(db_url)

    downgrade(db_url, "base")
    assert current(db_url) is None
    assert _tables(db_url) & APP_TABLES == set()

    upgrade(db_url)
    assert current(db_url) == head_revision()
    _check(db_url)
    _partial_indexes_match(db_url)


def test_drift_would_be_detected(migrated_url: str) -> None:
    """The no-drift check is real: a model the migrations do not match is reported."""
    drifted = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["polls"].append_column(sa.Column("note", sa.Text()))
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            diffs = compare_metadata(context, drifted)
    finally:
        engine.dispose()
    assert [d[0] for d in diffs] == ["add_column"]
    assert diffs[0][3].name == "note"


def test_one_open_row_per_key_is_enforced(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    t0 = "2025-03-01 08:00:00"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO items (item_id, watched, first_seen_at, polls_total, polls_failed, "
                "consecutive_failures, available, unavailable_streak) "
                f"VALUES (1, true, '{t0}', 0, 0, 0, true, 0)"
            )
            row = (
                "INSERT INTO sku_states (item_id, sku_id, name, price, sold_out, position, "
                "valid_from, valid_to) VALUES (1, 'a', 'A', 1.5, false, 0, '{t0}', {to})"
            )
            conn.exec_driver_sql(row.format(t0=t0, to=f"'{t0}'"))  # closed rows may repeat
            conn.exec_driver_sql(row.format(t0=t0, to=f"'{t0}'"))
            conn.exec_driver_sql(row.format(t0=t0, to="NULL"))
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.exec_driver_sql(row.format(t0=t0, to="NULL"))
    finally:
        engine.dispose()


def test_ensure_schema_upgrades_sqlite_automatically(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    engine = make_engine(url)
    try:
        ensure_schema(engine, migrate=False)
    finally:
        engine.dispose()
    assert current(url) == head_revision()


@pytest.mark.postgres
def test_postgresql_behind_head_needs_an_explicit_migration(pg_schema_url: str) -> None:
    with pytest.raises(StorageError) as info:
        Store.open(pg_schema_url)
    assert str(info.value) == (
        f"database schema is at nothing (empty database), expected {head_revision()}: "
        "run `monitor db upgrade` or start with --migrate"
    )
    assert current(pg_schema_url) is None

    store = Store.open(pg_schema_url, migrate=True)
    store.close()
    assert current(pg_schema_url) == head_revision()
    Store.open(pg_schema_url).close()  # at head: opens without --migrate


def test_unknown_revision_is_never_touched(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffff9999'")
        with pytest.raises(StorageError, match="ffff9999, which this version does not know"):
            ensure_schema(engine, migrate=True)
    finally:
        engine.dispose()
    assert current(migrated_url) == "ffff9999"


def test_alembic_command_line_config_uses_the_monitor_url(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``alembic -c alembic.ini upgrade head`` / ``check`` in a checkout: URL from the env."""
    monkeypatch.setenv("MONITOR_DATABASE_URL", db_url)
    monkeypatch.delenv("MONITOR_DATABASE_URL_FILE", raising=False)
    config = Config(str(REPO / "alembic.ini"))
    command.upgrade(config, "head")
    assert current(db_url) == head_revision()
    command.check(config)


def test_offline_sql_for_postgresql(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONITOR_DATABASE_URL", "postgresql://monitor:secret@db.example/monitor")
    config = alembic_config()
    command.upgrade(config, "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE items" in sql
    partial = "CREATE UNIQUE INDEX uq_sku_states_open ON sku_states (item_id, sku_id) "
    assert partial + "WHERE valid_to IS NULL" in sql
    assert "price NUMERIC NOT NULL" in sql
    assert "secret" not in sql
