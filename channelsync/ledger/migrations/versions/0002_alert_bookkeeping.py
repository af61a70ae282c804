"""alert bookkeeping

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 05:24:12.625471
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import channelsync.ledger.schema

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table('conflict', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolved_notified_at', channelsync.ledger.schema.UTCDateTime(), nullable=True))




def downgrade() -> None:

    with op.batch_alter_table('conflict', schema=None) as batch_op:
        batch_op.drop_column('resolved_notified_at')


