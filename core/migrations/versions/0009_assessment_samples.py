"""assessment samples

A job's accuracy-assessment sample (issue 28, ``core.assessment.store``): ``assessments`` (one per job: the seed and
allocation it was drawn with), ``assessment_strata`` (each map class's mapped area and tile count when it was drawn,
and its sample size: the design the estimators read, fixed even if the job's results change later) and
``assessment_units`` (the sampled tiles in the order a reviewer sees them, each with its stratum, its area and,
once given, its reference label, author and time).

Existing rows: none change; no job has a sample. Downgrading drops the three tables and the samples and labels in
them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'assessments',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('model_hash', sa.String(length=64), nullable=False),
        sa.Column('seed', sa.Integer(), nullable=False),
        sa.Column('allocation', sa.String(length=16), nullable=False),
        sa.Column('sample_size', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('job_id'),
    )
    op.create_table(
        'assessment_strata',
        sa.Column('assessment_id', sa.Integer(), nullable=False),
        sa.Column('class_name', sa.String(length=128), nullable=False),
        sa.Column('mapped_area_km2', sa.Float(), nullable=False),
        sa.Column('tile_count', sa.Integer(), nullable=False),
        sa.Column('sample_size', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['assessment_id'], ['assessments.id']),
        sa.PrimaryKeyConstraint('assessment_id', 'class_name'),
    )
    op.create_table(
        'assessment_units',
        sa.Column('assessment_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('z', sa.Integer(), nullable=False),
        sa.Column('x', sa.Integer(), nullable=False),
        sa.Column('y', sa.Integer(), nullable=False),
        sa.Column('stratum', sa.String(length=128), nullable=False),
        sa.Column('area_km2', sa.Float(), nullable=False),
        sa.Column('reference', sa.String(length=128), nullable=True),
        sa.Column('labelled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('author', sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(['assessment_id'], ['assessments.id']),
        sa.PrimaryKeyConstraint('assessment_id', 'position'),
    )
    op.create_index('uq_assessment_units_zxy', 'assessment_units', ['assessment_id', 'z', 'x', 'y'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_assessment_units_zxy', table_name='assessment_units')
    op.drop_table('assessment_units')
    op.drop_table('assessment_strata')
    op.drop_table('assessments')
