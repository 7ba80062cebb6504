"""empty tiles

``empty_tiles`` keeps the tiles that had nothing to classify (no tile at the server, entirely transparent or
nodata), keyed like ``tile_results``; ``job_batches.empty`` counts them per batch. Both are new: nothing moves.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'empty_tiles',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('model_hash', sa.String(length=64), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('z', sa.Integer(), nullable=True),
        sa.Column('x', sa.Integer(), nullable=True),
        sa.Column('y', sa.Integer(), nullable=True),
        sa.Column('root_name', sa.String(length=128), nullable=False),
        sa.Column('path', sa.Text(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('found_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id']),
        sa.ForeignKeyConstraint(['model_hash'], ['models.hash']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_empty_tiles_job', 'empty_tiles', ['job_id'])
    with_coordinates, without = sa.text('z IS NOT NULL'), sa.text('z IS NULL')
    op.create_index('uq_empty_tiles_model_zxy', 'empty_tiles', ['model_hash', 'z', 'x', 'y'], unique=True,
                    sqlite_where=with_coordinates, postgresql_where=with_coordinates)
    op.create_index('uq_empty_tiles_model_path', 'empty_tiles', ['model_hash', 'root_name', 'path'], unique=True,
                    sqlite_where=without, postgresql_where=without)
    op.add_column('job_batches', sa.Column('empty', sa.Integer(), server_default=sa.text('0'), nullable=False))


def downgrade() -> None:
    op.drop_column('job_batches', 'empty')
    op.drop_index('uq_empty_tiles_model_path', table_name='empty_tiles')
    op.drop_index('uq_empty_tiles_model_zxy', table_name='empty_tiles')
    op.drop_index('ix_empty_tiles_job', table_name='empty_tiles')
    op.drop_table('empty_tiles')
