"""certification events and the dashboard's indexes (issue 22)

Revision ID: 0022_certification_events
Revises: 0020_reminders
Create Date: 2026-12-04 14:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0022_certification_events'
down_revision = '0020_reminders'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'certification_events',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('cause', sa.String(length=16), nullable=True),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('prefecture', sa.String(length=8), nullable=True),
        sa.Column('subject', sa.String(length=16), nullable=False),
        sa.Column('proxy', sa.Boolean(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=True),
        sa.Column('value', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_certification_events_day_kind', 'certification_events', ['day', 'kind'],
                    unique=False)
    # The dashboard reads these daily totals (one row per day, step, cause, channel and
    # prefecture), so a year of figures is a few thousand rows whatever the traffic.
    op.create_table(
        'certification_daily',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('cause', sa.String(length=16), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('prefecture', sa.String(length=8), nullable=False),
        sa.Column('people', sa.Integer(), nullable=False),
        sa.Column('events', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('day', 'kind', 'cause', 'channel', 'prefecture'),
    )
    op.create_table(
        'certification_firsts',
        sa.Column('subject', sa.String(length=16), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('cause', sa.String(length=16), nullable=False),
        sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint('subject', 'kind', 'cause', 'year'),
    )
    # The handoff figures: when staff first wrote (backfilled from the messages).
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_reply_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE cases SET first_reply_at = (SELECT min(m.created_at) FROM case_messages m "
               "WHERE m.case_id = cases.id AND m.author = 'staff')")
    # The handoff and reminder figures filter cases, staff replies and deliveries by time.
    # (The columns after created_at make the scans index-only on PostgreSQL.)
    op.create_index('ix_cases_created_at', 'cases',
                    ['created_at', 'assigned_to', 'status', 'first_reply_at', 'closed_at'], unique=False)
    op.create_index('ix_case_messages_case_author_at', 'case_messages',
                    ['case_id', 'author', 'created_at'], unique=False)
    op.create_index('ix_reminder_deliveries_created_at', 'reminder_deliveries',
                    ['created_at', 'status', 'attempts', 'sent_at', 'subscription_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_reminder_deliveries_created_at', table_name='reminder_deliveries')
    op.drop_index('ix_case_messages_case_author_at', table_name='case_messages')
    op.drop_index('ix_cases_created_at', table_name='cases')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('first_reply_at')
    op.drop_table('certification_firsts')
    op.drop_table('certification_daily')
    op.drop_index('ix_certification_events_day_kind', table_name='certification_events')
    op.drop_table('certification_events')
