"""job source and bookkeeping columns; tiles keyed alike in results and failures

Jobs get typed columns for what ``region`` JSON used to carry besides the region (the resume cursor and the batch
number reservations) and a ``source`` JSON column that replaces ``root_name``, ``root_path`` and ``layout``:
``{"kind": "folder", "name": ..., "path": ..., "layout": ...}`` for classify jobs, ``{"kind": "imagefolder",
"path": ...}`` (the data folder) for training jobs. A tile's ``path`` may be null (sources that read tiles by
coordinates), and failed tiles are keyed like results: by (model, z, x, y) where a tile has coordinates.

Existing jobs, results and failures are kept: the data moves into the new columns. Failure rows that the new key
makes duplicates (the same tile failed under two sources) keep the newest. SQLite's native ``DROP COLUMN`` is
used for ``jobs`` (a copy-and-rename of ``jobs`` would trip the foreign keys that point at it).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 20:00:00
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOOKKEEPING = ("resume_after", "seq_reserved", "seq_recorded")
OLD_ROOT = ("root_name", "root_path", "layout")


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _json_params(statement: sa.TextClause, *names: str) -> sa.TextClause:
    # Typed as JSON, values are serialised the way each dialect stores JSON (text on SQLite, json on PostgreSQL).
    return statement.bindparams(*(sa.bindparam(name, type_=sa.JSON(none_as_null=True)) for name in names))


def _partial(where: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}


def _path_nullable(table: str, nullable: bool) -> None:
    # On SQLite this copies the table; its partial indexes are dropped first and made again by the caller.
    with op.batch_alter_table(table) as batch_op:
        batch_op.alter_column('path', existing_type=sa.Text(), nullable=nullable)


def upgrade() -> None:
    op.add_column('jobs', sa.Column('source', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
    op.add_column('jobs', sa.Column('resume_after', sa.JSON(), nullable=True))
    op.add_column('jobs', sa.Column('seq_reserved', sa.Integer(), nullable=False, server_default=sa.text('0')))
    op.add_column('jobs', sa.Column('seq_recorded', sa.Integer(), nullable=False, server_default=sa.text('0')))
    connection = op.get_bind()
    jobs = connection.execute(sa.text("SELECT id, kind, root_name, root_path, layout, region FROM jobs")).all()
    for job_id, kind, root_name, root_path, layout, region in jobs:
        region = dict(_loaded(region) or {})
        kept = {key: region.pop(key, None) for key in BOOKKEEPING}
        if kind == 'train':
            source = {"kind": "imagefolder", "path": root_path} if root_path else {}
        else:
            source = {"kind": "folder", "name": root_name, "path": root_path, "layout": layout or "plain"}
        connection.execute(
            _json_params(sa.text("UPDATE jobs SET source = :source, region = :region, resume_after = :after, "
                                 "seq_reserved = :reserved, seq_recorded = :recorded WHERE id = :id"),
                         "source", "region", "after"),
            {"source": source, "region": region, "after": kept["resume_after"], "id": job_id,
             "reserved": int(kept["seq_reserved"] or 0), "recorded": int(kept["seq_recorded"] or 0)},
        )
    for column in OLD_ROOT:
        op.drop_column('jobs', column)

    op.drop_index('uq_tile_results_model_zxy', table_name='tile_results')
    op.drop_index('uq_tile_results_model_path', table_name='tile_results')
    op.drop_index('uq_failed_tiles_model_path', table_name='failed_tiles')
    _path_nullable('tile_results', True)
    _path_nullable('failed_tiles', True)
    connection.execute(sa.text(
        "DELETE FROM failed_tiles WHERE z IS NOT NULL AND id NOT IN (SELECT MAX(id) FROM failed_tiles "
        "WHERE z IS NOT NULL GROUP BY model_hash, z, x, y)"))
    for table in ('tile_results', 'failed_tiles'):
        op.create_index(f'uq_{table}_model_zxy', table, ['model_hash', 'z', 'x', 'y'], unique=True,
                        **_partial('z IS NOT NULL'))
        op.create_index(f'uq_{table}_model_path', table, ['model_hash', 'root_name', 'path'], unique=True,
                        **_partial('z IS NULL'))


def downgrade() -> None:
    for table in ('tile_results', 'failed_tiles'):
        op.drop_index(f'uq_{table}_model_zxy', table_name=table)
        op.drop_index(f'uq_{table}_model_path', table_name=table)
    connection = op.get_bind()
    for table in ('tile_results', 'failed_tiles'):
        connection.execute(sa.text(f"UPDATE {table} SET path = '' WHERE path IS NULL"))
        _path_nullable(table, False)
    op.create_index('uq_tile_results_model_zxy', 'tile_results', ['model_hash', 'z', 'x', 'y'], unique=True,
                    **_partial('z IS NOT NULL'))
    op.create_index('uq_tile_results_model_path', 'tile_results', ['model_hash', 'root_name', 'path'], unique=True,
                    **_partial('z IS NULL'))
    op.create_index('uq_failed_tiles_model_path', 'failed_tiles', ['model_hash', 'root_name', 'path'], unique=True)

    op.add_column('jobs', sa.Column('root_name', sa.String(length=128), nullable=True))
    op.add_column('jobs', sa.Column('root_path', sa.Text(), nullable=True))
    op.add_column('jobs', sa.Column('layout', sa.String(length=128), nullable=True))
    rows = connection.execute(sa.text(
        "SELECT id, source, region, resume_after, seq_reserved, seq_recorded FROM jobs")).all()
    for job_id, source, region, after, reserved, recorded in rows:
        source, region = dict(_loaded(source) or {}), dict(_loaded(region) or {})
        region |= {"resume_after": _loaded(after), "seq_reserved": reserved, "seq_recorded": recorded}
        connection.execute(
            _json_params(sa.text("UPDATE jobs SET root_name = :name, root_path = :path, layout = :layout, "
                                 "region = :region WHERE id = :id"), "region"),
            {"name": source.get("name"), "path": source.get("path"), "layout": source.get("layout"),
             "region": region, "id": job_id},
        )
    for column in ('seq_recorded', 'seq_reserved', 'resume_after', 'source'):
        op.drop_column('jobs', column)
