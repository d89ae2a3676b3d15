"""reminder subscriptions and deliveries (issue 20)

Revision ID: 0020_reminders
Revises: 0002_attempt_details
Create Date: 2026-12-01 22:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0020_reminders'
down_revision = '0002_attempt_details'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'reminder_subscriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('conversation_key', sa.String(length=160), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('pensioner_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['pensioner_id'], ['pensioners.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('conversation_key', 'pensioner_id', name='uq_reminder_subscription'),
    )
    with op.batch_alter_table('reminder_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_subscriptions_conversation_key'),
                              ['conversation_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_reminder_subscriptions_pensioner_id'),
                              ['pensioner_id'], unique=False)
    op.create_table(
        'reminder_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscription_id', sa.Integer(), nullable=False),
        sa.Column('due_date', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['subscription_id'], ['reminder_subscriptions.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('subscription_id', 'due_date', 'kind', name='uq_reminder_delivery'),
    )
    with op.batch_alter_table('reminder_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_deliveries_subscription_id'),
                              ['subscription_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reminder_deliveries_status'), ['status'], unique=False)


def downgrade() -> None:
    op.drop_table('reminder_deliveries')
    op.drop_table('reminder_subscriptions')
