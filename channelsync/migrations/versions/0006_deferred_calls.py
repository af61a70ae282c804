"""deferred calls: when each kind of channel call is next allowed

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        # JSON: {"orders": "2026-12-04T09:33:00+00:00", ...}; calls deferred by a rate limit
        batch_op.add_column(sa.Column('deferred', sa.Text(), nullable=False, server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        batch_op.drop_column('deferred')
