"""deferred calls and where a pull resumes; drift suspects; writes of unknown or later outcome

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
    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drift_seen_at', channelsync.ledger.schema.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('drift_excess', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('drift_observed', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('drift_expected', sa.Integer(), nullable=True))
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
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        batch_op.drop_column('pull_resume')
        batch_op.drop_column('deferred')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('pending_index')
        batch_op.drop_column('pending_at')
        batch_op.drop_column('pending')
        batch_op.drop_column('sent')
    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.drop_column('drift_expected')
        batch_op.drop_column('drift_observed')
        batch_op.drop_column('drift_excess')
        batch_op.drop_column('drift_seen_at')
