"""the order book: orders as wholes, their stage changes, shipments to confirm; filled
from the order lines the ledger already holds

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import channelsync.ledger.schema

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

UTC_TS = channelsync.ledger.schema.UTCDateTime


def upgrade() -> None:
    order = op.create_table(
        'sales_order',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=200), nullable=False),
        sa.Column('order_id', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(), nullable=False),
        sa.Column('channel_stage', sa.String(), nullable=False),
        sa.Column('local_stage', sa.String(), nullable=False),
        sa.Column('stage', sa.String(), nullable=False),
        sa.Column('placed_at', UTC_TS(), nullable=True),
        sa.Column('paid_at', UTC_TS(), nullable=True),
        sa.Column('changed_at', UTC_TS(), nullable=True),
        sa.Column('first_seen_at', UTC_TS(), nullable=True),
        sa.Column('updated_at', UTC_TS(), nullable=True),
        sa.Column('buyer', sa.String(), nullable=False),
        sa.Column('total', sa.String(), nullable=False),
        sa.Column('currency', sa.String(), nullable=False),
        sa.Column('ordered', sa.Integer(), nullable=False),
        sa.Column('shipped', sa.Integer(), nullable=False),
        sa.Column('cancelled', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('channel', 'order_id'),
    )
    op.create_index('ix_sales_order_stage', 'sales_order', ['stage', 'updated_at'])
    op.create_index('ix_sales_order_placed', 'sales_order', ['placed_at'])
    event = op.create_table(
        'order_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=200), nullable=False),
        sa.Column('order_id', sa.String(length=200), nullable=False),
        sa.Column('stage', sa.String(), nullable=False),
        sa.Column('previous', sa.String(), nullable=False),
        sa.Column('at', UTC_TS(), nullable=True),
        sa.Column('source', sa.String(), nullable=False),
        sa.Column('detail', sa.String(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_order_event_order', 'order_event', ['channel', 'order_id', 'id'])
    op.create_table(
        'shipment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=400), nullable=False),
        sa.Column('channel', sa.String(length=200), nullable=False),
        sa.Column('order_id', sa.String(length=200), nullable=False),
        sa.Column('carrier', sa.String(), nullable=False),
        sa.Column('tracking', sa.String(), nullable=False),
        sa.Column('lines', sa.String(), nullable=False),
        sa.Column('completes', sa.Boolean(), nullable=False),
        sa.Column('state', sa.String(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UTC_TS(), nullable=True),
        sa.Column('sent_at', UTC_TS(), nullable=True),
        sa.Column('created_at', UTC_TS(), nullable=True),
        sa.Column('confirmed_at', UTC_TS(), nullable=True),
        sa.Column('ref', sa.String(), nullable=False),
        sa.Column('last_error', sa.String(), nullable=False),
        sa.Column('source', sa.String(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )
    op.create_index('ix_shipment_due', 'shipment', ['channel', 'state', 'next_attempt_at'])
    op.create_index('ix_shipment_order', 'shipment', ['channel', 'order_id'])
    _fill_from_lines(order, event)


def _fill_from_lines(order: sa.Table, event: sa.Table) -> None:
    """Every order the ledger holds lines of, with its units and the stage they show."""
    bind = op.get_bind()
    line = sa.table('order_line', sa.column('channel', sa.String), sa.column('order_id', sa.String),
                    sa.column('ordered', sa.Integer), sa.column('shipped', sa.Integer),
                    sa.column('cancelled', sa.Integer), sa.column('state', sa.String),
                    sa.column('status', sa.String), sa.column('changed_at', UTC_TS),
                    sa.column('first_seen_at', UTC_TS))
    rows = bind.execute(
        sa.select(line.c.channel, line.c.order_id, sa.func.sum(line.c.ordered),
                  sa.func.sum(line.c.shipped), sa.func.sum(line.c.cancelled),
                  sa.func.max(line.c.status), sa.func.max(line.c.changed_at),
                  sa.func.min(line.c.first_seen_at))
        .where(line.c.state != 'ignored')
        .group_by(line.c.channel, line.c.order_id)).all()
    now = datetime.now(UTC)
    orders, events = [], []
    for channel, order_id, ordered, shipped, cancelled, status, changed, seen in rows:
        ordered, shipped, cancelled = int(ordered or 0), int(shipped or 0), int(cancelled or 0)
        stage = _stage(ordered, shipped, cancelled)
        when = seen if isinstance(seen, datetime) else now
        orders.append({'channel': channel, 'order_id': order_id, 'status': status or '',
                       'channel_stage': '', 'local_stage': '', 'stage': stage,
                       'placed_at': None, 'paid_at': None,
                       'changed_at': changed if isinstance(changed, datetime) else None,
                       'first_seen_at': when, 'updated_at': now, 'buyer': '', 'total': '', 'currency': '',
                       'ordered': ordered, 'shipped': shipped, 'cancelled': cancelled})
        events.append({'channel': channel, 'order_id': order_id, 'stage': stage,
                       'previous': '', 'at': when, 'source': 'upgrade',
                       'detail': 'from the order lines held before the order book'})
    for start in range(0, len(orders), 500):
        op.bulk_insert(order, orders[start:start + 500])
        op.bulk_insert(event, events[start:start + 500])


def _stage(ordered: int, shipped: int, cancelled: int) -> str:
    # As channelsync.orders.book.stage_of with no channel stage and no seller's step.
    open_units = ordered - cancelled
    if ordered > 0 and open_units <= 0:
        return 'returned' if shipped > 0 else 'cancelled'
    if open_units > 0 and shipped >= open_units:
        return 'shipped'
    return 'partly_shipped' if shipped > 0 else 'received'


def downgrade() -> None:
    op.drop_index('ix_shipment_order', table_name='shipment')
    op.drop_index('ix_shipment_due', table_name='shipment')
    op.drop_table('shipment')
    op.drop_index('ix_order_event_order', table_name='order_event')
    op.drop_table('order_event')
    op.drop_index('ix_sales_order_placed', table_name='sales_order')
    op.drop_index('ix_sales_order_stage', table_name='sales_order')
    op.drop_table('sales_order')
