"""host problems; a lease on running training jobs

``host_problems`` lists what workers could not do because of their own host (``core.host_problems``). Jobs get
``lease_owner`` and ``lease_expires_at``: a training run renews its lease while it trains, so a run whose worker
died shows as lost once the lease expires (``core.leases``). Both are new and empty: nothing moves.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'host_problems',
        sa.Column('worker', sa.String(length=255), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('occurrences', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('worker', 'job_id'),
    )
    op.add_column('jobs', sa.Column('lease_owner', sa.String(length=255), nullable=True))
    op.add_column('jobs', sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('jobs', 'lease_expires_at')
    op.drop_column('jobs', 'lease_owner')
    op.drop_table('host_problems')
