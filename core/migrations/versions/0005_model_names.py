"""model names

``models.name``: an optional unique name a user gives a model (``tileclass models name``), usable wherever a model
is taken. New and empty: nothing moves.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 03:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('models', sa.Column('name', sa.String(length=64), nullable=True))
    op.create_index('uq_models_name', 'models', ['name'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_models_name', table_name='models')
    op.drop_column('models', 'name')
