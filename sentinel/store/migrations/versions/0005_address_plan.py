"""the site's address plan: network blocks assigned to departments, which bound every system's scan scope

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Starts empty: existing systems keep their scan_scope, but until an admin assigns their department
    # blocks that cover it, their scans are refused with the addresses outside the plan named
    # (sentinel/collector/address_plan.py), rather than the scopes being cut or deleted here.
    op.create_table('address_blocks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('cidr', sa.String(length=64), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_address_blocks_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_address_blocks')),
    sa.UniqueConstraint('cidr', name='uq_address_blocks_cidr')
    )
    with op.batch_alter_table('address_blocks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_address_blocks_department_id'), ['department_id'], unique=False)
    # Before 0005, `PATCH /systems/{id}` stored {"zones": null} or {"scan_scope": null} as a JSON null, after
    # which every listing of the system failed (issue 20). The API refuses null now; repair such rows to
    # the empty list (for scan_scope: nothing is scanned until an admin sets it again).
    json_null = "'null'::jsonb" if op.get_bind().dialect.name == 'postgresql' else "'null'"
    for column in ('zones', 'scan_scope'):
        # both names and the null literal are fixed above: nothing in this SQL comes from input
        op.execute(sa.text(f"UPDATE systems SET {column} = '[]' WHERE {column} = {json_null}"))  # noqa: S608


def downgrade() -> None:
    with op.batch_alter_table('address_blocks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_address_blocks_department_id'))

    op.drop_table('address_blocks')
