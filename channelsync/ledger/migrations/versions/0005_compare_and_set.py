"""compare-and-set: what each listing is believed to show, stale compares, first sight of lines

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 07:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import channelsync.ledger.schema

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.add_column(sa.Column('believed', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('believed_at', channelsync.ledger.schema.UTCDateTime(), nullable=True))
    with op.batch_alter_table('order_line', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_seen_at', channelsync.ledger.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('cancel_seen_at', channelsync.ledger.schema.UTCDateTime(), nullable=True))
        # Both in time order, so cheap to keep up on the ledger's hot insert path (an index
        # on channel_sku slowed applying orders by a fifth: bench/bench_ledger.py).
        batch_op.create_index('ix_order_line_seen', ['channel', 'first_seen_at'])
        batch_op.create_index('ix_order_line_cancel_seen', ['channel', 'cancel_seen_at'],
                              sqlite_where=sa.text('cancel_seen_at IS NOT NULL'),
                              postgresql_where=sa.text('cancel_seen_at IS NOT NULL'))
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stale_compares', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('stale_at', channelsync.ledger.schema.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        batch_op.drop_column('stale_at')
        batch_op.drop_column('stale_compares')
    with op.batch_alter_table('order_line', schema=None) as batch_op:
        batch_op.drop_index('ix_order_line_cancel_seen')
        batch_op.drop_index('ix_order_line_seen')
        batch_op.drop_column('cancel_seen_at')
        batch_op.drop_column('first_seen_at')
    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.drop_column('believed_at')
        batch_op.drop_column('believed')
