"""zombie reviews record the reviewer's role (`reviewer_role`: admin or dept_operator) when they are made, so
whether a dismissal is the authority's (an admin's closes its 通报 problem, a department's never does) no longer
depends on the reviewer's token as it is when the review is read

Backfill rule for the reviews stored before this revision (the read-time rule the 通报 loop used until now):
`cli:<user>` is admin (the local command line acts as admin); `token:<id>:<name>` is admin when token <id>
exists now with role admin; every other review is dept_operator (the review route admits only those two roles,
so a review that is not shown to be an admin's was the department operator's as far as the store can tell).

zombie_reviews has no dependants (no foreign key points at it), so on SQLite the batch copy that makes the column
NOT NULL drops and recreates nothing but this table. Its decision CHECK, which 0010 named
ck_zombie_reviews_ck_zombie_reviews_decision (the naming convention applied to a name that already had it), takes
the models' name, ck_zombie_reviews_decision, on the way (and keeps it on the way down).

Revision ID: 0014
Revises: 0013
"""
from __future__ import annotations

from typing import Optional

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

ROLES = "reviewer_role IN ('admin', 'dept_operator')"
DECISIONS = "decision IN ('confirm', 'dismiss')"  # as 0010 made it
MISNAMED = 'ck_zombie_reviews_ck_zombie_reviews_decision'


def backfill_role(reviewer: str, token_roles: dict[int, str]) -> str:
    """The role of a review stored before 0014, by the read-time rule it was judged by (this module's
    docstring); a copy, not an import, so the migration keeps meaning what it meant when it was written."""
    if reviewer.startswith("cli:"):
        return "admin"
    kind, _, rest = reviewer.partition(":")
    token_id = rest.partition(":")[0]
    role: Optional[str] = token_roles.get(int(token_id)) if kind == "token" and token_id.isdigit() else None
    return "admin" if role == "admin" else "dept_operator"


def upgrade() -> None:
    op.add_column('zombie_reviews', sa.Column('reviewer_role', sa.String(length=16), nullable=True))
    bind = op.get_bind()
    tokens = sa.table('api_tokens', sa.column('id', sa.Integer), sa.column('role', sa.String))
    reviews = sa.table('zombie_reviews', sa.column('id', sa.Integer), sa.column('reviewer', sa.String),
                       sa.column('reviewer_role', sa.String))
    token_roles = {row.id: row.role for row in bind.execute(sa.select(tokens.c.id, tokens.c.role))}
    rows = [{"rid": row.id, "role": backfill_role(row.reviewer, token_roles)}
            for row in bind.execute(sa.select(reviews.c.id, reviews.c.reviewer))]
    if rows:
        bind.execute(reviews.update().where(reviews.c.id == sa.bindparam("rid"))
                     .values(reviewer_role=sa.bindparam("role")), rows)
    # 0010 passed its decision CHECK through the naming convention twice (MISNAMED): it takes the models' name here
    checks = {c["name"] for c in sa.inspect(bind).get_check_constraints('zombie_reviews')}
    with op.batch_alter_table('zombie_reviews', schema=None) as batch_op:
        if MISNAMED in checks:
            batch_op.drop_constraint(batch_op.f(MISNAMED), type_='check')
            batch_op.create_check_constraint('decision', DECISIONS)
        batch_op.alter_column('reviewer_role', existing_type=sa.String(length=16), nullable=False)
        batch_op.create_check_constraint('reviewer_role', ROLES)


def downgrade() -> None:
    # the schema before 0014 judges a review by its reviewer string again (the backfill rule, at read time); the
    # decision CHECK keeps its corrected name, which nothing before 0014 depends on
    with op.batch_alter_table('zombie_reviews', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_zombie_reviews_reviewer_role'), type_='check')
        batch_op.drop_column('reviewer_role')
