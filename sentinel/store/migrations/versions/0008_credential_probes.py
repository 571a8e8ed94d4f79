"""systems get the opt-in credential-probe switch (issue 19 item 4): `credential_probes` (false for every
system stored before: never on by default), and who last changed it and when, which each scan run with the
probes on records in its args and report

Revision ID: 0008
Revises: 0007
"""
from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN on both dialects: a batch copy of `systems` on SQLite would drop the
    # table every host, run and scan points at, which its foreign keys refuse once one such row exists.
    op.add_column('systems', sa.Column('credential_probes', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column('systems', sa.Column('credential_probes_by', sa.String(length=200), nullable=True))
    op.add_column('systems', sa.Column('credential_probes_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    columns = ('credential_probes_at', 'credential_probes_by', 'credential_probes')
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        # no DROP COLUMN before SQLite 3.35: batch mode copies the table (with no row pointing at a system)
        with op.batch_alter_table('systems', schema=None) as batch_op:
            for name in columns:
                batch_op.drop_column(name)
        return
    # in place, as upgrade() adds them
    for name in columns:
        op.drop_column('systems', name)
