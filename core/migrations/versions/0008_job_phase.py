"""a job's phase

Which producer pass publishes an ``enqueuing`` classify job's batches is a column, ``jobs.phase`` (``enqueue``,
``resume`` or ``retry``; NULL for a job in any other state, and for training jobs), instead of a sentence in its
message (``core.job_states.JobPhase``, the transitions in ``core.jobs``).

Existing rows: before, an ``enqueuing`` job whose message was "retry in progress" or "resume in progress" was being
retried or resumed (a stopped pass left it so), and any other ``enqueuing`` classify job was being enqueued; they
get that phase. The note was read only while a job was ``enqueuing``: a job in another state keeps a stale note in
its message, and no phase. Messages are kept as they are. Downgrading drops the column: the messages still say it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The notes the producer wrote in the message of a job it was retrying or resuming, and the phase each says.
NOTES = {"retry in progress": "retry", "resume in progress": "resume"}


def upgrade() -> None:
    op.add_column('jobs', sa.Column('phase', sa.String(length=16), nullable=True))
    jobs = sa.table('jobs', sa.column('kind', sa.String), sa.column('state', sa.String),
                    sa.column('message', sa.Text), sa.column('phase', sa.String))
    enqueuing = jobs.c.state == 'enqueuing'
    for note, phase in NOTES.items():
        op.execute(jobs.update().where(enqueuing, jobs.c.message == note).values(phase=phase))
    op.execute(jobs.update().where(enqueuing, jobs.c.kind == 'classify', jobs.c.phase.is_(None))
               .values(phase='enqueue'))


def downgrade() -> None:
    op.drop_column('jobs', 'phase')
