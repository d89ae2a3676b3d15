"""canned responses (常用语) supervisors edit, seeded with the console's former quick replies (issue 18)

Revision ID: 0023_canned_responses
Revises: 0022_certification_events
Create Date: 2026-12-04 14:30:00
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0023_canned_responses'
down_revision = '0022_certification_events'
branch_labels = None
depends_on = None

# The quick replies the console had built in (bot/staff/canned.py DEFAULTS), copied here so
# this migration stays as it is when the code changes.
SEED = [
    ('问候', '您好，请问有什么可以帮您？'),
    ('核对', '请把身份证号码和姓名发给我核对一下。'),
    ('重拍', '请在光线明亮的地方，正对手机重新拍一张正脸照片发给我。'),
    ('稍等', '我们正在核实，请稍等几分钟。'),
    ('现场', '您也可以带上身份证到社区或社保经办机构现场办理。'),
]


def upgrade() -> None:
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
    op.drop_table('canned_responses')
