"""cases.language and staff_users.languages (Tibetan chats go to Tibetan speakers first) and
reminder_subscriptions.language (reminders in the language of the chat that asked) (issue 19)

Revision ID: 0023_languages
Revises: 0022_certification_events
"""
import sqlalchemy as sa
from alembic import op

revision = '0023_languages'
down_revision = '0022_certification_events'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=False, server_default='zh'))
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('languages', sa.String(length=32), nullable=False, server_default='zh'))
    with op.batch_alter_table('reminder_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=False, server_default='zh'))


def downgrade() -> None:
    with op.batch_alter_table('reminder_subscriptions', schema=None) as batch_op:
        batch_op.drop_column('language')
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.drop_column('languages')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('language')
