"""zombie-system detection (issue 16): `utilisation_days`, each host's utilisation samples rolled up per UTC day
(filled here from the samples already stored, then kept up by ingest), and `zombie_reviews`, the confirm/dismiss
decisions (审) on a system's verdict

Revision ID: 0010
Revises: 0009
"""
from __future__ import annotations

from collections import defaultdict
from datetime import timezone
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# JSONB on PostgreSQL, JSON text on SQLite (as sentinel.store.types.JSONType)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    days = op.create_table(
        'utilisation_days',
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('department_id', sa.Integer(), nullable=False),
        sa.Column('samples', sa.Integer(), nullable=False),
        sa.Column('hours_mask', sa.Integer(), nullable=False),
        sa.Column('cpu_sum', sa.Float(), nullable=False),
        sa.Column('memory_sum', sa.Float(), nullable=False),
        sa.Column('net_bytes', sa.BigInteger(), nullable=False),
        sa.Column('logins_max', sa.Integer(), nullable=False),
        sa.Column('inbound_max', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name='fk_utilisation_days_host_id_hosts'),
        sa.ForeignKeyConstraint(['department_id'], ['departments.id'],
                                name='fk_utilisation_days_department_id_departments'),
        sa.PrimaryKeyConstraint('host_id', 'day', name='pk_utilisation_days'),
    )
    op.create_index('ix_utilisation_days_day', 'utilisation_days', ['day'])
    op.create_table(
        'zombie_reviews',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('system_id', sa.Integer(), nullable=False),
        sa.Column('department_id', sa.Integer(), nullable=False),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('verdict', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('evidence', JSON, nullable=False),
        sa.Column('reviewer', sa.String(length=200), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("decision IN ('confirm', 'dismiss')", name='ck_zombie_reviews_decision'),
        sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name='fk_zombie_reviews_system_id_systems'),
        sa.ForeignKeyConstraint(['department_id'], ['departments.id'],
                                name='fk_zombie_reviews_department_id_departments'),
        sa.PrimaryKeyConstraint('id', name='pk_zombie_reviews'),
    )
    op.create_index('ix_zombie_reviews_system', 'zombie_reviews', ['system_id', 'id'])
    op.create_index('ix_zombie_reviews_department_id', 'zombie_reviews', ['department_id'])
    _fill_days(days)


def _fill_days(days: sa.Table) -> None:
    """The samples stored before this revision, rolled up as ingest rolls up new ones (inbound_max None: the
    samples of those agents carried no inbound connections)."""
    bind = op.get_bind()
    samples = sa.table('utilisation_samples', sa.column('host_id'), sa.column('department_id'),
                       sa.column('at', sa.DateTime(timezone=True)),
                       sa.column('cpu_percent'), sa.column('memory_percent'), sa.column('net_bytes_sent'),
                       sa.column('net_bytes_recv'), sa.column('logins'))
    acc: dict[tuple[int, Any], dict[str, Any]] = defaultdict(lambda: {"samples": 0, "hours_mask": 0, "cpu_sum": 0.0,
                                                               "memory_sum": 0.0, "net_bytes": 0, "logins_max": 0})
    for r in bind.execute(sa.select(samples)).yield_per(10_000):
        at = r.at
        at = at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)
        row = acc[(r.host_id, at.date())]
        row["department_id"] = r.department_id
        row["samples"] += 1
        row["hours_mask"] |= 1 << at.hour
        row["cpu_sum"] += r.cpu_percent
        row["memory_sum"] += r.memory_percent
        row["net_bytes"] += r.net_bytes_sent + r.net_bytes_recv
        row["logins_max"] = max(row["logins_max"], r.logins)
    rows = [{"host_id": host, "day": day, "inbound_max": None, **v} for (host, day), v in acc.items()]
    for i in range(0, len(rows), 5000):
        bind.execute(sa.insert(days), rows[i:i + 5000])


def downgrade() -> None:
    op.drop_index('ix_zombie_reviews_department_id', table_name='zombie_reviews')
    op.drop_index('ix_zombie_reviews_system', table_name='zombie_reviews')
    op.drop_table('zombie_reviews')
    op.drop_index('ix_utilisation_days_day', table_name='utilisation_days')
    op.drop_table('utilisation_days')
