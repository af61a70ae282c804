"""index of listings never pushed

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 05:35:04.375533
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.create_index('ix_listing_unpushed', ['channel'], unique=False, sqlite_where=sa.text('last_pushed IS NULL'), postgresql_where=sa.text('last_pushed IS NULL'))




def downgrade() -> None:

    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.drop_index('ix_listing_unpushed', sqlite_where=sa.text('last_pushed IS NULL'), postgresql_where=sa.text('last_pushed IS NULL'))


