"""customers and follow-ups: buyers as salted hashes with their tier, orders' shipped and
delivered times, follow-ups recorded before they are sent

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 20:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import channelsync.ledger.schema

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

UTC_TS = channelsync.ledger.schema.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table('sales_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shipped_at', UTC_TS(), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', UTC_TS(), nullable=True))
        batch_op.add_column(sa.Column('delivered_source', sa.String(), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('buyer_key', sa.String(length=64), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('tier', sa.String(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('buyer_forgotten', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index('ix_sales_order_buyer_key', ['buyer_key'])
    # Orders already shipped: when the book first saw them shipped.
    op.execute(
        "UPDATE sales_order SET shipped_at = (SELECT min(e.at) FROM order_event e "
        "WHERE e.channel = sales_order.channel AND e.order_id = sales_order.order_id "
        "AND e.stage IN ('partly_shipped', 'shipped', 'delivered')) "
        "WHERE stage IN ('partly_shipped', 'shipped', 'delivered', 'returned')")
    op.create_table(
        'buyer',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('display_name', sa.String(), nullable=False),
        sa.Column('first_seen_at', UTC_TS(), nullable=True),
        sa.Column('last_order_at', UTC_TS(), nullable=True),
        sa.Column('tier', sa.String(), nullable=False),
        sa.Column('tier_at', UTC_TS(), nullable=True),
        sa.Column('tier_order', sa.String(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_index('ix_buyer_last_order', 'buyer', ['last_order_at'])
    op.create_table(
        'buyer_alias',
        sa.Column('alias', sa.String(length=64), nullable=False),
        sa.Column('buyer_key', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('alias'),
    )
    op.create_index('ix_buyer_alias_buyer', 'buyer_alias', ['buyer_key'])
    op.create_table(
        'followup',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rule', sa.String(length=100), nullable=False),
        sa.Column('channel', sa.String(length=200), nullable=False),
        sa.Column('order_id', sa.String(length=200), nullable=False),
        sa.Column('due_at', UTC_TS(), nullable=True),
        sa.Column('state', sa.String(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UTC_TS(), nullable=True),
        sa.Column('recorded_at', UTC_TS(), nullable=True),
        sa.Column('sent_at', UTC_TS(), nullable=True),
        sa.Column('last_error', sa.String(), nullable=False),
        sa.Column('subject', sa.String(), nullable=False),
        sa.Column('body', sa.String(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('rule', 'channel', 'order_id'),
    )
    op.create_index('ix_followup_state', 'followup', ['state', 'next_attempt_at'])


def downgrade() -> None:
    op.drop_index('ix_followup_state', table_name='followup')
    op.drop_table('followup')
    op.drop_index('ix_buyer_alias_buyer', table_name='buyer_alias')
    op.drop_table('buyer_alias')
    op.drop_index('ix_buyer_last_order', table_name='buyer')
    op.drop_table('buyer')
    with op.batch_alter_table('sales_order', schema=None) as batch_op:
        batch_op.drop_index('ix_sales_order_buyer_key')
        for column in ('buyer_forgotten', 'tier', 'buyer_key', 'delivered_source', 'delivered_at', 'shipped_at'):
            batch_op.drop_column(column)
