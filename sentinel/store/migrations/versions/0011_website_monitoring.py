"""website monitoring (网站群监测, issue 17): declared `websites` (per department and system, the declaration is
the scope of what is fetched), their monitoring `website_rounds` with every rule's verdict, availability
`website_visits`, what rounds saw of declared pages (`website_pages`: freshness, snapshots), the reviewed tamper
`website_baselines`, and `website_findings`, the websites' rectification trail (first seen, last seen, resolved)

Revision ID: 0011
Revises: 0010
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

# JSONB on PostgreSQL, JSON text on SQLite (as sentinel.store.types.JSONType)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('websites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('declaration', JSON, nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('interval_seconds', sa.Integer(), nullable=False),
    sa.Column('visit_seconds', sa.Integer(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('visit_claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.CheckConstraint('interval_seconds >= 300', name=op.f('ck_websites_interval')),
    sa.CheckConstraint('visit_seconds >= 60', name=op.f('ck_websites_visit_interval')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_websites_department_id_departments')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_websites_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_websites')),
    sa.UniqueConstraint('name', name=op.f('uq_websites_name'))
    )
    with op.batch_alter_table('websites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_websites_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_websites_system_id'), ['system_id'], unique=False)

    op.create_table('website_rounds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('website_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('triggered_by', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('runner', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('failed_rules', sa.Integer(), nullable=False),
    sa.Column('vetoed', JSON, nullable=False),
    sa.Column('summary', JSON, nullable=False),
    sa.Column('results', JSON, nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name=op.f('ck_website_rounds_status')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_website_rounds_department_id_departments')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_website_rounds_system_id_systems')),
    sa.ForeignKeyConstraint(['website_id'], ['websites.id'], name=op.f('fk_website_rounds_website_id_websites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_website_rounds'))
    )
    with op.batch_alter_table('website_rounds', schema=None) as batch_op:
        batch_op.create_index('ix_website_rounds_department', ['department_id', 'id'], unique=False)
        batch_op.create_index('ix_website_rounds_website', ['website_id', 'id'], unique=False)
        batch_op.create_index('uq_website_rounds_running', ['website_id'], unique=True, sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))

    op.create_table('website_visits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('website_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('elapsed_ms', sa.Float(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_website_visits_department_id_departments')),
    sa.ForeignKeyConstraint(['website_id'], ['websites.id'], name=op.f('fk_website_visits_website_id_websites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_website_visits'))
    )
    with op.batch_alter_table('website_visits', schema=None) as batch_op:
        batch_op.create_index('ix_website_visits_website', ['website_id', 'at'], unique=False)

    op.create_table('website_baselines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('website_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('url_sha256', sa.String(length=64), nullable=False),
    sa.Column('lines', JSON, nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=True),
    sa.Column('reviewed_by', sa.String(length=200), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_website_baselines_department_id_departments')),
    sa.ForeignKeyConstraint(['round_id'], ['website_rounds.id'], name=op.f('fk_website_baselines_round_id_website_rounds')),
    sa.ForeignKeyConstraint(['website_id'], ['websites.id'], name=op.f('fk_website_baselines_website_id_websites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_website_baselines'))
    )
    with op.batch_alter_table('website_baselines', schema=None) as batch_op:
        batch_op.create_index('ix_website_baselines_page', ['website_id', 'url_sha256', 'id'], unique=False)

    op.create_table('website_findings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('website_id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('subject_sha256', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('title', JSON, nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('remediation', JSON, nullable=False),
    sa.Column('observed', JSON, nullable=True),
    sa.Column('evidence', JSON, nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_round_id', sa.Integer(), nullable=False),
    sa.Column('last_round_id', sa.Integer(), nullable=False),
    sa.Column('resolved_round_id', sa.Integer(), nullable=True),
    sa.Column('occurrences', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_website_findings_department_id_departments')),
    sa.ForeignKeyConstraint(['first_round_id'], ['website_rounds.id'], name=op.f('fk_website_findings_first_round_id_website_rounds')),
    sa.ForeignKeyConstraint(['last_round_id'], ['website_rounds.id'], name=op.f('fk_website_findings_last_round_id_website_rounds')),
    sa.ForeignKeyConstraint(['resolved_round_id'], ['website_rounds.id'], name=op.f('fk_website_findings_resolved_round_id_website_rounds')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_website_findings_system_id_systems')),
    sa.ForeignKeyConstraint(['website_id'], ['websites.id'], name=op.f('fk_website_findings_website_id_websites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_website_findings'))
    )
    with op.batch_alter_table('website_findings', schema=None) as batch_op:
        batch_op.create_index('ix_website_findings_department', ['department_id', 'resolved_at', 'id'], unique=False)
        batch_op.create_index('ix_website_findings_website', ['website_id', 'id'], unique=False)
        batch_op.create_index('uq_website_findings_open', ['website_id', 'rule', 'subject_sha256'], unique=True, sqlite_where=sa.text('resolved_at IS NULL'), postgresql_where=sa.text('resolved_at IS NULL'))

    op.create_table('website_pages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('website_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('url_sha256', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('text', JSON, nullable=True),
    sa.Column('text_sha256', sa.String(length=64), nullable=True),
    sa.Column('round_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['round_id'], ['website_rounds.id'], name=op.f('fk_website_pages_round_id_website_rounds')),
    sa.ForeignKeyConstraint(['website_id'], ['websites.id'], name=op.f('fk_website_pages_website_id_websites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_website_pages')),
    sa.UniqueConstraint('website_id', 'url_sha256', name='uq_website_pages_url')
    )


def downgrade() -> None:
    op.drop_table('website_pages')
    with op.batch_alter_table('website_findings', schema=None) as batch_op:
        batch_op.drop_index('uq_website_findings_open', sqlite_where=sa.text('resolved_at IS NULL'), postgresql_where=sa.text('resolved_at IS NULL'))
        batch_op.drop_index('ix_website_findings_website')
        batch_op.drop_index('ix_website_findings_department')

    op.drop_table('website_findings')
    with op.batch_alter_table('website_baselines', schema=None) as batch_op:
        batch_op.drop_index('ix_website_baselines_page')

    op.drop_table('website_baselines')
    with op.batch_alter_table('website_visits', schema=None) as batch_op:
        batch_op.drop_index('ix_website_visits_website')

    op.drop_table('website_visits')
    with op.batch_alter_table('website_rounds', schema=None) as batch_op:
        batch_op.drop_index('uq_website_rounds_running', sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))
        batch_op.drop_index('ix_website_rounds_website')
        batch_op.drop_index('ix_website_rounds_department')

    op.drop_table('website_rounds')
    with op.batch_alter_table('websites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_websites_system_id'))
        batch_op.drop_index(batch_op.f('ix_websites_department_id'))

    op.drop_table('websites')
