"""corrections and retries

``tile_corrections`` keeps the labels people give tiles (``tileclass correct``), each with its author and time;
``job_batches.retried`` counts the tiles of a ``tileclass retry`` batch that were failures of the job before. Both
are new: nothing moves.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'tile_corrections',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('z', sa.Integer(), nullable=False),
        sa.Column('x', sa.Integer(), nullable=False),
        sa.Column('y', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=128), nullable=False),
        sa.Column('model_hash', sa.String(length=64), nullable=False),
        sa.Column('author', sa.String(length=255), nullable=False),
        sa.Column('origin', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_tile_corrections_zxy', 'tile_corrections', ['z', 'x', 'y', 'created_at'])
    op.add_column('job_batches', sa.Column('retried', sa.Integer(), server_default=sa.text('0'), nullable=False))


def downgrade() -> None:
    op.drop_column('job_batches', 'retried')
    op.drop_index('ix_tile_corrections_zxy', table_name='tile_corrections')
    op.drop_table('tile_corrections')
