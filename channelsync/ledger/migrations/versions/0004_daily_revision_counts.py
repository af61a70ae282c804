"""daily revision counts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 06:49:55.884684
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revisions_day', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('revisions', sa.Integer(), nullable=False,
                                      server_default='0'))




def downgrade() -> None:

    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.drop_column('revisions')
        batch_op.drop_column('revisions_day')


