"""network scans: per-system scan schedules, scan runs (at most one running per system) and service
findings (open services with first/last seen and the scan that saw them closed)

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# JSONB on PostgreSQL, JSON text on SQLite (as sentinel.store.types.JSONType)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('scan_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('triggered_by', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('runner', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('targets', JSON, nullable=False),
    sa.Column('full_scope', sa.Boolean(), nullable=False),
    sa.Column('scope', JSON, nullable=False),
    sa.Column('args', JSON, nullable=False),
    sa.Column('zone_baseline', sa.String(length=200), nullable=True),
    sa.Column('zone', sa.String(length=64), nullable=True),
    sa.Column('scanner_zone', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('warnings', JSON, nullable=False),
    sa.Column('hosts_up', sa.Integer(), nullable=False),
    sa.Column('services_open', sa.Integer(), nullable=False),
    sa.Column('services_forbidden', sa.Integer(), nullable=False),
    sa.Column('high_risk', sa.Integer(), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.Column('items', JSON, nullable=False),
    sa.Column('results', JSON, nullable=False),
    sa.Column('summary', JSON, nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('conclusion', sa.String(length=16), nullable=True),
    sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name=op.f('ck_scan_runs_status')),
    sa.CheckConstraint("triggered_by IN ('schedule', 'api', 'cli')", name=op.f('ck_scan_runs_triggered_by')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_scan_runs_department_id_departments')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_scan_runs_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scan_runs'))
    )
    with op.batch_alter_table('scan_runs', schema=None) as batch_op:
        batch_op.create_index('ix_scan_runs_department', ['department_id', 'id'], unique=False)
        batch_op.create_index('ix_scan_runs_system', ['system_id', 'id'], unique=False)
        batch_op.create_index('uq_scan_runs_running', ['system_id'], unique=True, sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))

    op.create_table('scan_schedules',
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('interval_seconds', sa.Integer(), nullable=True),
    sa.Column('jitter_seconds', sa.Integer(), nullable=False),
    sa.Column('zone_baseline', sa.String(length=200), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=True),
    sa.Column('scanner_zone', sa.String(length=64), nullable=True),
    sa.Column('tcp_ports', sa.String(length=2000), nullable=True),
    sa.Column('udp_ports', sa.String(length=2000), nullable=True),
    sa.Column('version_detection', sa.Boolean(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.CheckConstraint('interval_seconds IS NULL OR interval_seconds >= 60', name=op.f('ck_scan_schedules_interval')),
    sa.CheckConstraint('jitter_seconds >= 0', name=op.f('ck_scan_schedules_jitter')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_scan_schedules_department_id_departments')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_scan_schedules_system_id_systems'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('system_id', name=op.f('pk_scan_schedules'))
    )
    with op.batch_alter_table('scan_schedules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scan_schedules_department_id'), ['department_id'], unique=False)

    op.create_table('service_findings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=True),
    sa.Column('host', sa.String(length=64), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('proto', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('service', sa.String(length=64), nullable=True),
    sa.Column('nmap_service', sa.String(length=64), nullable=True),
    sa.Column('product', sa.String(length=200), nullable=True),
    sa.Column('version', sa.String(length=200), nullable=True),
    sa.Column('extrainfo', sa.String(length=500), nullable=True),
    sa.Column('tunnel', sa.String(length=16), nullable=True),
    sa.Column('starttls', sa.Boolean(), nullable=True),
    sa.Column('banner', sa.Text(), nullable=True),
    sa.Column('tls', JSON, nullable=True),
    sa.Column('ssh', JSON, nullable=True),
    sa.Column('http', JSON, nullable=True),
    sa.Column('exposure', JSON, nullable=True),
    sa.Column('plaintext_management', sa.Boolean(), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=True),
    sa.Column('forbidden', sa.Boolean(), nullable=False),
    sa.Column('high_risk', JSON, nullable=False),
    sa.Column('check_results', JSON, nullable=False),
    sa.Column('errors', JSON, nullable=False),
    sa.Column('evidence', JSON, nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_scan_id', sa.Integer(), nullable=False),
    sa.Column('last_scan_id', sa.Integer(), nullable=False),
    sa.Column('closed_scan_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("proto IN ('tcp', 'udp')", name=op.f('ck_service_findings_proto')),
    sa.ForeignKeyConstraint(['closed_scan_id'], ['scan_runs.id'], name=op.f('fk_service_findings_closed_scan_id_scan_runs')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_service_findings_department_id_departments')),
    sa.ForeignKeyConstraint(['first_scan_id'], ['scan_runs.id'], name=op.f('fk_service_findings_first_scan_id_scan_runs')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_service_findings_host_id_hosts')),
    sa.ForeignKeyConstraint(['last_scan_id'], ['scan_runs.id'], name=op.f('fk_service_findings_last_scan_id_scan_runs')),
    sa.ForeignKeyConstraint(['system_id'], ['systems.id'], name=op.f('fk_service_findings_system_id_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_findings'))
    )
    with op.batch_alter_table('service_findings', schema=None) as batch_op:
        batch_op.create_index('ix_service_findings_department', ['department_id', 'id'], unique=False)
        batch_op.create_index('ix_service_findings_system', ['system_id', 'closed_at'], unique=False)
        batch_op.create_index('uq_service_findings_open', ['system_id', 'host', 'proto', 'port'], unique=True, sqlite_where=sa.text('closed_at IS NULL'), postgresql_where=sa.text('closed_at IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('service_findings', schema=None) as batch_op:
        batch_op.drop_index('uq_service_findings_open', sqlite_where=sa.text('closed_at IS NULL'), postgresql_where=sa.text('closed_at IS NULL'))
        batch_op.drop_index('ix_service_findings_system')
        batch_op.drop_index('ix_service_findings_department')

    op.drop_table('service_findings')
    with op.batch_alter_table('scan_schedules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scan_schedules_department_id'))

    op.drop_table('scan_schedules')
    with op.batch_alter_table('scan_runs', schema=None) as batch_op:
        batch_op.drop_index('uq_scan_runs_running', sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))
        batch_op.drop_index('ix_scan_runs_system')
        batch_op.drop_index('ix_scan_runs_department')

    op.drop_table('scan_runs')
