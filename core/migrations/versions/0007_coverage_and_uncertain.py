"""coverage and uncertain answers

A result keeps its tile's coverage (``tile_results.coverage``: the share of its pixels that held data) and whether
it is uncertain (``tile_results.uncertain``: less confident than its job's bound); a job keeps the bounds its enqueue
settled (``jobs.min_coverage``, ``jobs.uncertain_below``), which its workers read; a batch counts its uncertain
answers (``job_batches.uncertain``), as it counts the others, for ``status``. A job's results are indexed by
confidence too (``ix_tile_results_job`` on ``(job_id, confidence)``), so the review queue reads a job's least
confident answers in index order instead of sorting all of them.

Existing rows: their coverage was never measured (their transparent pixels were composited on black), so it stays
NULL, shown as unknown (null), never as 1.0; no existing answer is uncertain; an existing job's bounds stay NULL:
its later batches take ``TILECLASS_MIN_COVERAGE`` and flag nothing. Downgrading drops the columns, and what they held.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tile_results', sa.Column('coverage', sa.Float(), nullable=True))
    op.add_column('tile_results', sa.Column('uncertain', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column('jobs', sa.Column('min_coverage', sa.Float(), nullable=True))
    op.add_column('jobs', sa.Column('uncertain_below', sa.Float(), nullable=True))
    op.add_column('job_batches', sa.Column('uncertain', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.drop_index('ix_tile_results_job', table_name='tile_results')
    op.create_index('ix_tile_results_job', 'tile_results', ['job_id', 'confidence'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tile_results_job', table_name='tile_results')
    op.create_index('ix_tile_results_job', 'tile_results', ['job_id'], unique=False)
    op.drop_column('job_batches', 'uncertain')
    op.drop_column('jobs', 'uncertain_below')
    op.drop_column('jobs', 'min_coverage')
    op.drop_column('tile_results', 'uncertain')
    op.drop_column('tile_results', 'coverage')
