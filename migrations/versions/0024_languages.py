"""Reminders (issue 20), certification events (22), canned responses (18) and languages (19).

Squashes 0020_reminders, 0022_certification_events, 0023_canned_responses and 0024_languages,
written in one unreleased round, into one revision. It keeps the last id, so a database already
at head stays current; one left at an intermediate id must be rebuilt.
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0024_languages'
down_revision = '0002_attempt_details'

# The quick replies the console had built in (bot/staff/canned.py DEFAULTS), copied here so
# this migration stays as it is when the code changes.
SEED = [
    ('问候', '您好，请问有什么可以帮您？'),
    ('核对', '请把身份证号码和姓名发给我核对一下。'),
    ('重拍', '请在光线明亮的地方，正对手机重新拍一张正脸照片发给我。'),
    ('稍等', '我们正在核实，请稍等几分钟。'),
    ('现场', '您也可以带上身份证到社区或社保经办机构现场办理。'),
]


def _added_columns() -> list[tuple[str, sa.Column]]:
    """The columns added to tables of earlier revisions, in this order (fresh objects each call:
    adding a column binds it to its table)."""
    return [
        # the handoff figures: when staff first wrote (backfilled from the messages below)
        ('cases', sa.Column('first_reply_at', sa.DateTime(timezone=True), nullable=True)),
        # Tibetan chats go to Tibetan speakers first
        ('cases', sa.Column('language', sa.String(length=8), nullable=False, server_default='zh')),
        ('staff_users', sa.Column('languages', sa.String(length=32), nullable=False, server_default='zh')),
    ]


def _indexes(table: str, *columns: str) -> None:
    """An index on each column, named ix_<table>_<column> (as ``index=True`` names it)."""
    for column in columns:
        op.create_index(f'ix_{table}_{column}', table, [column], unique=False)


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
        # reminders go out in the language of the chat that asked
        sa.Column('language', sa.String(length=8), nullable=False, server_default='zh'),
        sa.ForeignKeyConstraint(['pensioner_id'], ['pensioners.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('conversation_key', 'pensioner_id', name='uq_reminder_subscription'),
    )
    _indexes('reminder_subscriptions', 'conversation_key', 'pensioner_id')
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
    _indexes('reminder_deliveries', 'subscription_id', 'status')

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

    for table, column in _added_columns():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(column)
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

    # Canned responses (常用语) supervisors edit, seeded with the console's former quick replies.
    table = op.create_table(
        'canned_responses',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('shortcut', sa.String(length=32), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('shortcut'),
    )
    now = datetime.now(timezone.utc)
    op.bulk_insert(table, [{'shortcut': shortcut, 'text': text, 'updated_by': None, 'created_at': now,
                            'updated_at': now} for shortcut, text in SEED])


def downgrade() -> None:
    op.drop_index('ix_case_messages_case_author_at', table_name='case_messages')
    op.drop_index('ix_cases_created_at', table_name='cases')
    for table, column in reversed(_added_columns()):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(column.name)
    for table in ('canned_responses', 'certification_firsts', 'certification_daily', 'certification_events',
                  'reminder_deliveries', 'reminder_subscriptions'):
        op.drop_table(table)
