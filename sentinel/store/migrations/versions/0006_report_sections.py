"""report chapters an assessor writes (测评项目概述, 被测对象描述, 整体测评, ...), per system

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report_sections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_report_sections_department_id_departments')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_report_sections_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_sections'))
    )
    with op.batch_alter_table('report_sections', schema=None) as batch_op:
        batch_op.create_index('ix_report_sections_key', ['system_id', 'key', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_sections_department_id'), ['department_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('report_sections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_sections_department_id'))
        batch_op.drop_index('ix_report_sections_key')
    op.drop_table('report_sections')
