"""zombie-system verdicts are a source of 通报 problems (issue 17): notice_items.source may be `zombie` (its
source_id is the system's)

Revision ID: 0013
Revises: 0012
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

NAME = 'ck_notice_items_source'
OLD = "source IN ('finding', 'service', 'website')"
NEW = "source IN ('finding', 'service', 'website', 'zombie')"


def _sqlite_check(old: str, new: str) -> None:
    """Swap the CHECK in the table's stored definition (SQLite's documented procedure for changing CHECK
    constraints, lang_altertable.html section 7): a batch copy of notice_items would drop the table the
    department's answers (ON DELETE CASCADE) and carried items point at, and SQLite's foreign keys cannot be
    turned off inside the migration's transaction. Only rows the old CHECK allowed exist when it is widened, and
    none the new one refuses when it is narrowed (downgrade checks first), so the stored rows need no change."""
    bind = op.get_bind()
    sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'notice_items'").scalar()
    clause = f"CONSTRAINT {NAME} CHECK ({old})"
    if sql is None or sql.count(clause) != 1:
        raise RuntimeError(f"notice_items: its definition does not hold {clause!r} once, as 0012 made it; "
                           "not changed")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.execute(sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'notice_items'"),
                     {"sql": sql.replace(clause, f"CONSTRAINT {NAME} CHECK ({new})")})
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")  # other connections re-read it
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _swap(old: str, new: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_check(old, new)
        return
    op.drop_constraint(op.f(NAME), 'notice_items', type_='check')
    op.create_check_constraint(op.f(NAME), 'notice_items', new)


def upgrade() -> None:
    _swap(OLD, NEW)


def downgrade() -> None:
    # The older schema cannot hold a zombie item: refused while one exists, rather than dropping the department's
    # answers on it with it.
    n = op.get_bind().exec_driver_sql("SELECT count(*) FROM notice_items WHERE source = 'zombie'").scalar()
    if n:
        raise RuntimeError(f"notice_items holds {n} zombie-system item(s), which the schema before 0013 cannot "
                           "hold: delete the notices that list them first (their answers and files go with them)")
    _swap(NEW, OLD)
