"""runs and findings name the 测评对象 they judge (issue 15): the host's OS or a database, middleware or web
server instance on it. `object_kind` (the baseline's `object`), `object_instance` ("" for the OS: a port or a
config path for the others) and, on runs, `object_name` (the record's name for it). Rows stored before are the
host's OS. The open-finding uniqueness becomes per host, object and check, so two instances of one product on
a host (the same checks) each keep their own rectification trail.

Revision ID: 0009
Revises: 0008
"""
from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_OPEN = sa.text("resolved_at IS NULL")


def upgrade() -> None:
    # Plain ADD COLUMN on both dialects (constant server defaults): a batch copy of `runs` on SQLite would drop
    # the table check results, findings and events point at (0008 says why).
    for table in ('runs', 'findings'):
        op.add_column(table, sa.Column('object_kind', sa.String(length=16), server_default='os', nullable=False))
        op.add_column(table, sa.Column('object_instance', sa.String(length=128), server_default='',
                                       nullable=False))
    op.add_column('runs', sa.Column('object_name', sa.String(length=200), server_default='', nullable=False))
    op.create_index('ix_runs_host_object', 'runs', ['host_id', 'baseline_id', 'object_instance', 'id'])
    op.drop_index('uq_findings_open', table_name='findings')
    op.create_index('uq_findings_open', 'findings', ['host_id', 'object_kind', 'object_instance', 'check_id'],
                    unique=True, sqlite_where=_OPEN, postgresql_where=_OPEN)


def downgrade() -> None:
    # The older schema holds one open episode per host and check: where two objects have one open, the later
    # ones are closed at their last sighting (as fixed, the nearest resolution it knows) before the index returns.
    op.execute("UPDATE findings SET resolved_at = last_seen, resolved_run_id = last_run_id, resolution = 'fixed' "
               "WHERE resolved_at IS NULL AND id NOT IN (SELECT min(f.id) FROM findings f "
               "WHERE f.resolved_at IS NULL GROUP BY f.host_id, f.check_id)")
    op.drop_index('uq_findings_open', table_name='findings')
    op.create_index('uq_findings_open', 'findings', ['host_id', 'check_id'], unique=True, sqlite_where=_OPEN,
                    postgresql_where=_OPEN)
    op.drop_index('ix_runs_host_object', table_name='runs')
    old_sqlite = op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35)
    for table, columns in (('runs', ('object_name', 'object_instance', 'object_kind')),
                           ('findings', ('object_instance', 'object_kind'))):
        if old_sqlite:  # no DROP COLUMN before SQLite 3.35: batch mode copies the table
            with op.batch_alter_table(table, schema=None) as batch_op:
                for name in columns:
                    batch_op.drop_column(name)
            continue
        for name in columns:
            op.drop_column(table, name)
