"""initial schema: departments, graded systems, hosts, agents, tokens, reports, runs, results,
findings, manual assessments, events, audit log, inventory and utilisation samples

Revision ID: 0001
Revises: (none)
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

# JSONB on PostgreSQL, JSON text on SQLite (as sentinel.store.types.JSONType)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('all_departments', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('admin', 'dept_operator', 'assessor', 'readonly')", name=op.f('ck_api_tokens_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=500), nullable=False),
    sa.Column('source_ip', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)

    op.create_table('departments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_departments')),
    sa.UniqueConstraint('name', name=op.f('uq_departments_name'))
    )
    op.create_table('api_token_departments',
    sa.Column('token_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_api_token_departments_department_id_departments')),
    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], name=op.f('fk_api_token_departments_token_id_api_tokens'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_id', 'department_id', name=op.f('pk_api_token_departments'))
    )
    with op.batch_alter_table('api_token_departments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_departments_department_id'), ['department_id'], unique=False)

    op.create_table('systems',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('s_grade', sa.Integer(), nullable=False),
    sa.Column('a_grade', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=8), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('zones', JSON, nullable=False),
    sa.Column('scan_scope', JSON, nullable=False),
    sa.Column('chain_head', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('a_grade BETWEEN 1 AND 4', name=op.f('ck_systems_a_grade')),
    sa.CheckConstraint('level BETWEEN 2 AND 4', name=op.f('ck_systems_level')),
    sa.CheckConstraint('s_grade BETWEEN 1 AND 4', name=op.f('ck_systems_s_grade')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_systems_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_systems')),
    sa.UniqueConstraint('name', name=op.f('uq_systems_name'))
    )
    with op.batch_alter_table('systems', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_systems_department_id'), ['department_id'], unique=False)

    op.create_table('enrollment_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_by_agent', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_enrollment_tokens_department_id_departments')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_enrollment_tokens_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollment_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_enrollment_tokens_token_hash'))
    )
    with op.batch_alter_table('enrollment_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollment_tokens_department_id'), ['department_id'], unique=False)

    op.create_table('hosts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('addresses', JSON, nullable=False),
    sa.Column('os_id', sa.String(length=64), nullable=False),
    sa.Column('os_version', sa.String(length=64), nullable=False),
    sa.Column('os_name', sa.String(length=200), nullable=False),
    sa.Column('family', sa.String(length=32), nullable=True),
    sa.Column('arch', sa.String(length=32), nullable=False),
    sa.Column('kernel', sa.String(length=128), nullable=True),
    sa.Column('inventory', JSON, nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_hosts_department_id_departments')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_hosts_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hosts')),
    sa.UniqueConstraint('system_id', 'hostname', name='uq_hosts_system_hostname')
    )
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hosts_department_id'), ['department_id'], unique=False)

    op.create_table('manual_assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('clause', sa.String(length=32), nullable=False),
    sa.Column('item', sa.String(length=8), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('assessor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_manual_assessments_department_id_departments')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_manual_assessments_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_manual_assessments'))
    )
    with op.batch_alter_table('manual_assessments', schema=None) as batch_op:
        batch_op.create_index('ix_manual_assessments_department', ['department_id', 'id'], unique=False)
        batch_op.create_index('ix_manual_assessments_item', ['system_id', 'clause', 'item', 'id'], unique=False)

    op.create_table('agents',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('public_key', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.String(length=500), nullable=True),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_ip', sa.String(length=64), nullable=True),
    sa.Column('enrollment_token_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("state IN ('enrolled', 'revoked')", name=op.f('ck_agents_state')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_agents_department_id_departments')),
    sa.ForeignKeyConstraint(['enrollment_token_id'], ['enrollment_tokens.id'], name=op.f('fk_agents_enrollment_token_id_enrollment_tokens')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_agents_host_id_hosts')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_agents_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
    sa.UniqueConstraint('public_key', name=op.f('uq_agents_public_key'))
    )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agents_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agents_host_id'), ['host_id'], unique=False)

    op.create_table('inventory',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('arch', sa.String(length=32), nullable=False),
    sa.Column('cpu_model', sa.String(length=200), nullable=True),
    sa.Column('cpu_count', sa.Integer(), nullable=True),
    sa.Column('memory_bytes', sa.BigInteger(), nullable=True),
    sa.Column('packages_count', sa.Integer(), nullable=True),
    sa.Column('data', JSON, nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_inventory_department_id_departments')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_inventory_host_id_hosts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inventory'))
    )
    with op.batch_alter_table('inventory', schema=None) as batch_op:
        batch_op.create_index('ix_inventory_host', ['host_id', 'at'], unique=False)

    op.create_table('utilisation_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cpu_percent', sa.Float(), nullable=False),
    sa.Column('memory_percent', sa.Float(), nullable=False),
    sa.Column('net_bytes_sent', sa.BigInteger(), nullable=False),
    sa.Column('net_bytes_recv', sa.BigInteger(), nullable=False),
    sa.Column('logins', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_utilisation_samples_department_id_departments')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_utilisation_samples_host_id_hosts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_utilisation_samples'))
    )
    with op.batch_alter_table('utilisation_samples', schema=None) as batch_op:
        batch_op.create_index('ix_utilisation_samples_host', ['host_id', 'at'], unique=False)

    op.create_table('reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('agent_id', sa.String(length=64), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source_ip', sa.String(length=64), nullable=True),
    sa.Column('outcome', JSON, nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.Column('envelope', sa.LargeBinary(), nullable=False),
    sa.CheckConstraint("kind IN ('host_report', 'inventory', 'utilisation')", name=op.f('ck_reports_kind')),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_reports_agent_id_agents')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_reports_department_id_departments')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_reports_host_id_hosts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
    sa.UniqueConstraint('report_id', name=op.f('uq_reports_report_id'))
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reports_agent_id'), ['agent_id'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.String(length=64), nullable=False),
    sa.Column('agent_id', sa.String(length=64), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('baseline_id', sa.String(length=128), nullable=False),
    sa.Column('baseline_version', sa.String(length=64), nullable=False),
    sa.Column('baseline_level', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('summary', JSON, nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('pass_rate', sa.Float(), nullable=True),
    sa.Column('conclusion', sa.String(length=16), nullable=False),
    sa.Column('checks_total', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('high_risk', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('prev_chain_hash', sa.String(length=64), nullable=False),
    sa.Column('chain_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_runs_agent_id_agents')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_runs_department_id_departments')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_runs_host_id_hosts')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_runs_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
    sa.UniqueConstraint('report_id', name=op.f('uq_runs_report_id'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_department', ['department_id', 'id'], unique=False)
        batch_op.create_index('ix_runs_host_baseline', ['host_id', 'baseline_id', 'id'], unique=False)
        batch_op.create_index('ix_runs_system', ['system_id', 'id'], unique=False)

    op.create_table('check_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('check_id', sa.String(length=128), nullable=False),
    sa.Column('clause', sa.String(length=32), nullable=False),
    sa.Column('item', sa.String(length=8), nullable=False),
    sa.Column('title', JSON, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('high_risk', sa.String(length=32), nullable=True),
    sa.Column('observed', JSON, nullable=True),
    sa.Column('expected', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('evidence', JSON, nullable=False),
    sa.Column('waiver', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_check_results_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_check_results'))
    )
    with op.batch_alter_table('check_results', schema=None) as batch_op:
        batch_op.create_index('ix_check_results_run', ['run_id', 'id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=True),
    sa.Column('check_id', sa.String(length=128), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('payload', JSON, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered', sa.Boolean(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_events_department_id_departments')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_events_host_id_hosts')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_events_run_id_runs')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_events_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_department', ['department_id', 'id'], unique=False)
        batch_op.create_index('ix_events_pending', ['delivered', 'id'], unique=False)

    op.create_table('findings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('check_id', sa.String(length=128), nullable=False),
    sa.Column('clause', sa.String(length=32), nullable=False),
    sa.Column('item', sa.String(length=8), nullable=False),
    sa.Column('title', JSON, nullable=False),
    sa.Column('remediation', JSON, nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('high_risk', sa.String(length=32), nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.String(length=16), nullable=True),
    sa.Column('first_run_id', sa.Integer(), nullable=False),
    sa.Column('last_run_id', sa.Integer(), nullable=False),
    sa.Column('resolved_run_id', sa.Integer(), nullable=True),
    sa.Column('occurrences', sa.Integer(), nullable=False),
    sa.CheckConstraint("resolution IS NULL OR resolution IN ('fixed', 'waived')", name=op.f('ck_findings_resolution')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_findings_department_id_departments')),
    sa.ForeignKeyConstraint(['first_run_id'], ['runs.id'], name=op.f('fk_findings_first_run_id_runs')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_findings_host_id_hosts')),
    sa.ForeignKeyConstraint(['last_run_id'], ['runs.id'], name=op.f('fk_findings_last_run_id_runs')),
    sa.ForeignKeyConstraint(['resolved_run_id'], ['runs.id'], name=op.f('fk_findings_resolved_run_id_runs')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_findings_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_findings'))
    )
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.create_index('ix_findings_department', ['department_id', 'id'], unique=False)
        batch_op.create_index('ix_findings_host_check', ['host_id', 'check_id', 'id'], unique=False)
        batch_op.create_index('ix_findings_system', ['system_id', 'resolved_at'], unique=False)
        batch_op.create_index('uq_findings_open', ['host_id', 'check_id'], unique=True, sqlite_where=sa.text('resolved_at IS NULL'), postgresql_where=sa.text('resolved_at IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.drop_index('uq_findings_open', sqlite_where=sa.text('resolved_at IS NULL'), postgresql_where=sa.text('resolved_at IS NULL'))
        batch_op.drop_index('ix_findings_system')
        batch_op.drop_index('ix_findings_host_check')
        batch_op.drop_index('ix_findings_department')

    op.drop_table('findings')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_pending')
        batch_op.drop_index('ix_events_department')

    op.drop_table('events')
    with op.batch_alter_table('check_results', schema=None) as batch_op:
        batch_op.drop_index('ix_check_results_run')

    op.drop_table('check_results')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_system')
        batch_op.drop_index('ix_runs_host_baseline')
        batch_op.drop_index('ix_runs_department')

    op.drop_table('runs')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reports_agent_id'))

    op.drop_table('reports')
    with op.batch_alter_table('utilisation_samples', schema=None) as batch_op:
        batch_op.drop_index('ix_utilisation_samples_host')

    op.drop_table('utilisation_samples')
    with op.batch_alter_table('inventory', schema=None) as batch_op:
        batch_op.drop_index('ix_inventory_host')

    op.drop_table('inventory')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agents_host_id'))
        batch_op.drop_index(batch_op.f('ix_agents_department_id'))

    op.drop_table('agents')
    with op.batch_alter_table('manual_assessments', schema=None) as batch_op:
        batch_op.drop_index('ix_manual_assessments_item')
        batch_op.drop_index('ix_manual_assessments_department')

    op.drop_table('manual_assessments')
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hosts_department_id'))

    op.drop_table('hosts')
    with op.batch_alter_table('enrollment_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollment_tokens_department_id'))

    op.drop_table('enrollment_tokens')
    with op.batch_alter_table('systems', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_systems_department_id'))

    op.drop_table('systems')
    with op.batch_alter_table('api_token_departments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_departments_department_id'))

    op.drop_table('api_token_departments')
    op.drop_table('departments')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_at')

    op.drop_table('audit_log')
    op.drop_table('api_tokens')
