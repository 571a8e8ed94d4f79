"""assessment attachments: files attached to manual assessments (interview notes, scanned documents),
kept with their SHA-256

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TABLE = 'assessment_attachments'
INDEX = 'ix_assessment_attachments_assessment'
COLUMNS = {'id', 'assessment_id', 'name', 'sha256', 'size', 'content', 'created_at'}


def upgrade() -> None:
    # Before this migration, sentinel/evidence/attachments.py created this very table itself on first use
    # (`sentinel assess --attach`), outside the migrations. A store that did so already holds the table,
    # with these columns, its foreign key and its index, and with attachments that are part of exported
    # evidence: keep it as it is rather than fail on CREATE TABLE or drop those files. Only a table of
    # that name with other columns is refused, since it is not ours and the code would misread it.
    inspector = sa.inspect(op.get_bind())
    if inspector.has_table(TABLE):
        found = {c['name'] for c in inspector.get_columns(TABLE)}
        if found != COLUMNS:
            raise RuntimeError(f"table {TABLE} exists with columns {sorted(found)}, expected {sorted(COLUMNS)}: "
                               "it was not made by sentinel; rename or drop it, then upgrade again")
        if INDEX not in {i['name'] for i in inspector.get_indexes(TABLE)}:
            with op.batch_alter_table(TABLE, schema=None) as batch_op:
                batch_op.create_index(INDEX, ['assessment_id', 'id'], unique=False)
        return

    op.create_table(TABLE,
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assessment_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assessment_id'], ['manual_assessments.id'], name=op.f('fk_assessment_attachments_assessment_id_manual_assessments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessment_attachments'))
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(INDEX, ['assessment_id', 'id'], unique=False)


def downgrade() -> None:
    # Drops the attachments with the table (also a table adopted above from the first-use code): below
    # 0003 the schema has no attachments.
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_index(INDEX)

    op.drop_table(TABLE)
