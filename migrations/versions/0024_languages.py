"""cases.language and staff_users.languages (Tibetan chats go to Tibetan speakers first) and
reminder_subscriptions.language (reminders in the language of the chat that asked) (issue 19)

Revision ID: 0024_languages
Revises: 0023_canned_responses
"""
import sqlalchemy as sa
from alembic import op

revision = '0024_languages'
down_revision = '0023_canned_responses'
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
