"""check results keep the baseline's advisory mark (issue 14), so what the store counts (findings, metrics,
evidence) leaves advisory evidence out as scoring does; a finding opened while a check counted is resolved as
`advisory` once the baseline makes the check advisory (sentinel/collector/drift.py)

Rows stored before this revision have no mark (NULL): they are the hosts' older runs; the latest run of
each host, which metrics and evidence read, gets the mark with the host's next report.

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# JSONB on PostgreSQL, JSON text on SQLite (as sentinel.store.types.JSONType); the {zh, en} reason or NULL
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table('check_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('advisory', JSON, nullable=True))
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_findings_resolution'), type_='check')
        batch_op.create_check_constraint(
            'resolution', "resolution IS NULL OR resolution IN ('fixed', 'waived', 'advisory')")


def downgrade() -> None:
    # the older schema has no such resolution; the episode stays closed, under the nearest one it knows
    op.execute("UPDATE findings SET resolution = 'fixed' WHERE resolution = 'advisory'")
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_findings_resolution'), type_='check')
        batch_op.create_check_constraint('resolution', "resolution IS NULL OR resolution IN ('fixed', 'waived')")
    with op.batch_alter_table('check_results', schema=None) as batch_op:
        batch_op.drop_column('advisory')
