"""when the write an outbox row sent went out: a listing's write_sent_at moves only with
a write that landed

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 16:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import channelsync.ledger.schema

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_at', channelsync.ledger.schema.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('sent_at')
