"""report ids are unique per agent, not globally; enrollment tokens may allow the re-enrollment of one named
host

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A report id is the agent's own name for one report: two agents may pick the same one, and an
    # agent must never be answered from (or refused because of) another agent's report. Uniqueness is
    # per (agent, report_id); the agent's column comes first so the lookup by agent stays indexed.
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_constraint('uq_reports_report_id', type_='unique')
        batch_op.create_unique_constraint('uq_reports_agent_report', ['agent_id', 'report_id'])
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint('uq_runs_report_id', type_='unique')
        batch_op.create_unique_constraint('uq_runs_agent_report', ['agent_id', 'report_id'])
    # Enrolling a hostname the system already has is refused unless the token names that host: an
    # admin's explicit consent that the new key takes over the host and its history.
    with op.batch_alter_table('enrollment_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reenroll_hostname', sa.String(length=255), nullable=True))


def downgrade() -> None:
    # Going back to global report ids fails (IntegrityError) if two agents already share a report id:
    # that store cannot be expressed below 0004, and refusing is better than dropping reports.
    with op.batch_alter_table('enrollment_tokens', schema=None) as batch_op:
        batch_op.drop_column('reenroll_hostname')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint('uq_runs_agent_report', type_='unique')
        batch_op.create_unique_constraint('uq_runs_report_id', ['report_id'])
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_constraint('uq_reports_agent_report', type_='unique')
        batch_op.create_unique_constraint('uq_reports_report_id', ['report_id'])
