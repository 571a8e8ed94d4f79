"""the notification loop (通报 -> 整改 -> 反馈, issue 17): numbered `notices` to a department, their `notice_items`
(one problem each: its source finding, grade, deadline and verified state), the department's `notice_answers` and
their `notice_attachments`

Revision ID: 0012
Revises: 0011
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# JSONB on PostgreSQL, JSON text on SQLite (as sentinel.store.types.JSONType)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('authority', sa.String(length=200), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('policy', JSON, nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_by', sa.String(length=200), nullable=False),
    sa.CheckConstraint("kind IN ('periodic', 'event')", name=op.f('ck_notices_kind')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_notices_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notices')),
    sa.UniqueConstraint('year', 'seq', name='uq_notices_year_seq')
    )
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index('ix_notices_department', ['department_id', 'id'], unique=False)

    op.create_table('notice_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notice_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('grade', sa.String(length=8), nullable=False),
    sa.Column('title', JSON, nullable=False),
    sa.Column('location', sa.Text(), nullable=False),
    sa.Column('basis', sa.Text(), nullable=False),
    sa.Column('remediation', JSON, nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fixed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('carried_from', sa.Integer(), nullable=True),
    sa.CheckConstraint("source IN ('finding', 'service', 'website')", name=op.f('ck_notice_items_source')),
    sa.CheckConstraint("state IN ('open', 'fixed', 'overdue')", name=op.f('ck_notice_items_state')),
    sa.ForeignKeyConstraint(['carried_from'], ['notice_items.id'], name=op.f('fk_notice_items_carried_from_notice_items')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_notice_items_department_id_departments')),
    sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name=op.f('fk_notice_items_notice_id_notices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_notice_items_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice_items'))
    )
    with op.batch_alter_table('notice_items', schema=None) as batch_op:
        batch_op.create_index('ix_notice_items_department', ['department_id', 'state'], unique=False)
        batch_op.create_index('ix_notice_items_notice', ['notice_id', 'id'], unique=False)
        batch_op.create_index('ix_notice_items_source', ['source', 'source_id', 'id'], unique=False)

    op.create_table('notice_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('answered_by', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_notice_answers_department_id_departments')),
    sa.ForeignKeyConstraint(['item_id'], ['notice_items.id'], name=op.f('fk_notice_answers_item_id_notice_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice_answers'))
    )
    with op.batch_alter_table('notice_answers', schema=None) as batch_op:
        batch_op.create_index('ix_notice_answers_item', ['item_id', 'id'], unique=False)

    op.create_table('notice_attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('answer_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['answer_id'], ['notice_answers.id'], name=op.f('fk_notice_attachments_answer_id_notice_answers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice_attachments'))
    )
    with op.batch_alter_table('notice_attachments', schema=None) as batch_op:
        batch_op.create_index('ix_notice_attachments_answer', ['answer_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('notice_attachments', schema=None) as batch_op:
        batch_op.drop_index('ix_notice_attachments_answer')

    op.drop_table('notice_attachments')
    with op.batch_alter_table('notice_answers', schema=None) as batch_op:
        batch_op.drop_index('ix_notice_answers_item')

    op.drop_table('notice_answers')
    with op.batch_alter_table('notice_items', schema=None) as batch_op:
        batch_op.drop_index('ix_notice_items_source')
        batch_op.drop_index('ix_notice_items_notice')
        batch_op.drop_index('ix_notice_items_department')

    op.drop_table('notice_items')
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index('ix_notices_department')

    op.drop_table('notices')
