"""deferred calls and where a pull resumes; drift suspects; writes of unknown or later
outcome; the push log; since when a listing shows what it
shows, and when our last write to it went out

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import channelsync.ledger.schema

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'push_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('listing_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=200), nullable=False),
        sa.Column('channel_sku', sa.String(length=200), nullable=False),
        sa.Column('sku', sa.String(length=200), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('previous', sa.Integer(), nullable=True),
        sa.Column('available', sa.Integer(), nullable=True),
        sa.Column('watermark', channelsync.ledger.schema.UTCDateTime(), nullable=True),
        sa.Column('sent_at', channelsync.ledger.schema.UTCDateTime(), nullable=True),
        sa.Column('outcome', sa.String(), nullable=False),
        sa.Column('detail', sa.String(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_push_log_listing', 'push_log', ['listing_id', 'sent_at'])
    op.create_index('ix_push_log_channel', 'push_log', ['channel', 'sent_at'])
    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drift_seen_at', channelsync.ledger.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('drift_excess', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('drift_observed', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('drift_expected', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('drift_since', channelsync.ledger.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('shown_since', channelsync.ledger.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('write_sent_at', channelsync.ledger.schema.UTCDateTime(), nullable=True))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('pending', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('pending_at', channelsync.ledger.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('pending_index', sa.Integer(), nullable=True))
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        # JSON: {"orders": "2026-12-04T09:33:00+00:00", ...}; calls deferred by a rate limit
        batch_op.add_column(sa.Column('deferred', sa.Text(), nullable=False, server_default='{}'))
        # JSON: {"since", "page", "started"} of a pull stopped after a committed page
        batch_op.add_column(sa.Column('pull_resume', sa.Text(), nullable=False, server_default=''))


def downgrade() -> None:
    op.drop_index('ix_push_log_channel', table_name='push_log')
    op.drop_index('ix_push_log_listing', table_name='push_log')
    op.drop_table('push_log')
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        batch_op.drop_column('pull_resume')
        batch_op.drop_column('deferred')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('pending_index')
        batch_op.drop_column('pending_at')
        batch_op.drop_column('pending')
        batch_op.drop_column('sent')
    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.drop_column('write_sent_at')
        batch_op.drop_column('shown_since')
        batch_op.drop_column('drift_since')
        batch_op.drop_column('drift_expected')
        batch_op.drop_column('drift_observed')
        batch_op.drop_column('drift_excess')
        batch_op.drop_column('drift_seen_at')
