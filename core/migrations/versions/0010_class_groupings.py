"""class groupings

Named groupings of a model's classes into a user's categories (issue 29, ``core.class_groups``): the table
``class_groupings`` (name, the model's SHA-256 as a plain column, the groups in display order as JSON, created_at).

Existing rows: none change; there is no grouping yet. Downgrading drops the table and the groupings in it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 02:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'class_groupings',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('model_hash', sa.String(length=64), nullable=False),
        sa.Column('groups', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('class_groupings')
