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
    op.create_index('ix_certification_events_day_kind', 'certification_events',
                    ['day', 'kind', 'channel', 'prefecture', 'cause', 'subject'], unique=False)
    # The handoff and reminder figures filter cases, staff replies and deliveries by time.
    op.create_index('ix_cases_created_at', 'cases', ['created_at'], unique=False)
    op.create_index('ix_case_messages_case_author_at', 'case_messages',
                    ['case_id', 'author', 'created_at'], unique=False)
    op.create_index('ix_reminder_deliveries_created_at', 'reminder_deliveries', ['created_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_reminder_deliveries_created_at', table_name='reminder_deliveries')
    op.drop_index('ix_case_messages_case_author_at', table_name='case_messages')
    op.drop_index('ix_cases_created_at', table_name='cases')
    op.drop_index('ix_certification_events_day_kind', table_name='certification_events')
    op.drop_table('certification_events')
