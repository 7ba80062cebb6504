"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 22:42:56.103210
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('models',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('arch', sa.String(length=32), nullable=False),
    sa.Column('class_names', sa.JSON(), nullable=False),
    sa.Column('image_size', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('model_hash', sa.String(length=64), nullable=True),
    sa.Column('root_name', sa.String(length=128), nullable=True),
    sa.Column('root_path', sa.Text(), nullable=True),
    sa.Column('layout', sa.String(length=128), nullable=True),
    sa.Column('region', sa.JSON(), nullable=False),
    sa.Column('total_tiles', sa.Integer(), nullable=False),
    sa.Column('total_batches', sa.Integer(), nullable=False),
    sa.Column('skipped_tiles', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['model_hash'], ['models.hash'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_model_hash'), ['model_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_state'), ['state'], unique=False)

    op.create_table('failed_tiles',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('model_hash', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('z', sa.Integer(), nullable=True),
    sa.Column('x', sa.Integer(), nullable=True),
    sa.Column('y', sa.Integer(), nullable=True),
    sa.Column('root_name', sa.String(length=128), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.ForeignKeyConstraint(['model_hash'], ['models.hash'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('failed_tiles', schema=None) as batch_op:
        batch_op.create_index('ix_failed_tiles_job', ['job_id'], unique=False)
        batch_op.create_index('uq_failed_tiles_model_path', ['model_hash', 'root_name', 'path'], unique=True)

    op.create_table('job_batches',
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('tiles', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('classified', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.PrimaryKeyConstraint('job_id', 'seq')
    )
    with op.batch_alter_table('job_batches', schema=None) as batch_op:
        batch_op.create_index('ix_job_batches_job_finished', ['job_id', 'finished_at'], unique=False)

    op.create_table('tile_results',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('model_hash', sa.String(length=64), nullable=False),
    sa.Column('z', sa.Integer(), nullable=True),
    sa.Column('x', sa.Integer(), nullable=True),
    sa.Column('y', sa.Integer(), nullable=True),
    sa.Column('root_name', sa.String(length=128), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('probabilities', sa.JSON(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('classified_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.ForeignKeyConstraint(['model_hash'], ['models.hash'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tile_results', schema=None) as batch_op:
        batch_op.create_index('ix_tile_results_job', ['job_id'], unique=False)
        batch_op.create_index('ix_tile_results_zxy', ['z', 'x', 'y'], unique=False)
        batch_op.create_index('uq_tile_results_model_path', ['model_hash', 'root_name', 'path'], unique=True, sqlite_where=sa.text('z IS NULL'), postgresql_where=sa.text('z IS NULL'))
        batch_op.create_index('uq_tile_results_model_zxy', ['model_hash', 'z', 'x', 'y'], unique=True, sqlite_where=sa.text('z IS NOT NULL'), postgresql_where=sa.text('z IS NOT NULL'))



def downgrade() -> None:
    with op.batch_alter_table('tile_results', schema=None) as batch_op:
        batch_op.drop_index('uq_tile_results_model_zxy', sqlite_where=sa.text('z IS NOT NULL'), postgresql_where=sa.text('z IS NOT NULL'))
        batch_op.drop_index('uq_tile_results_model_path', sqlite_where=sa.text('z IS NULL'), postgresql_where=sa.text('z IS NULL'))
        batch_op.drop_index('ix_tile_results_zxy')
        batch_op.drop_index('ix_tile_results_job')

    op.drop_table('tile_results')
    with op.batch_alter_table('job_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_job_batches_job_finished')

    op.drop_table('job_batches')
    with op.batch_alter_table('failed_tiles', schema=None) as batch_op:
        batch_op.drop_index('uq_failed_tiles_model_path')
        batch_op.drop_index('ix_failed_tiles_job')

    op.drop_table('failed_tiles')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_state'))
        batch_op.drop_index(batch_op.f('ix_jobs_model_hash'))

    op.drop_table('jobs')
    op.drop_table('models')
