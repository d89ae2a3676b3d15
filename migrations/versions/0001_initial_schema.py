"""Initial schema."""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None


def _indexes(table: str, *columns: str, unique: bool = False) -> None:
    """An index on each column, named ix_<table>_<column> (as ``index=True`` names it)."""
    for column in columns:
        op.create_index(f'ix_{table}_{column}', table, [column], unique=unique)


def upgrade() -> None:
    op.create_table(
        'audit_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=160), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('target', sa.String(length=160), nullable=True),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    _indexes('audit_log', 'action', 'at')
    op.create_table(
        'home_visit_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reference', sa.String(length=32), nullable=False),
        sa.Column('pensioner_name', sa.String(length=64), nullable=False),
        sa.Column('id_number', sa.String(length=18), nullable=False),
        sa.Column('address', sa.String(length=255), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('reason', sa.String(length=255), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('chat_user', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('reference'),
    )
    op.create_table(
        'pensioners',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('id_number', sa.String(length=18), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=True),
        sa.Column('region', sa.String(length=32), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('certified_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('certified_by', sa.String(length=64), nullable=True),
        sa.Column('next_due', sa.Date(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    _indexes('pensioners', 'id_number', unique=True)
    op.create_table(
        'staff_users',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('failed_logins', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('username'),
    )
    op.create_table(
        'cases',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('conversation_key', sa.String(length=160), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('assigned_to', sa.Integer(), nullable=True),
        sa.Column('pensioner_id', sa.Integer(), nullable=True),
        sa.Column('transcript', sa.JSON(), nullable=False),
        sa.Column('evidence', sa.JSON(), nullable=False),
        sa.Column('proxy', sa.JSON(), nullable=False),
        sa.Column('decision', sa.String(length=16), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['assigned_to'], ['staff_users.id']),
        sa.ForeignKeyConstraint(['pensioner_id'], ['pensioners.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    _indexes('cases', 'conversation_key', 'status')
    op.create_table(
        'certification_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('pensioner_id', sa.Integer(), nullable=True),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('chat_user', sa.String(length=128), nullable=False),
        sa.Column('proxy', sa.Boolean(), nullable=False),
        sa.Column('relationship', sa.String(length=16), nullable=True),
        sa.Column('quality_codes', sa.JSON(), nullable=False),
        sa.Column('distance', sa.Float(), nullable=True),
        sa.Column('threshold', sa.Float(), nullable=True),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('photo_path', sa.String(length=255), nullable=True),
        sa.Column('photo_hash', sa.String(length=32), nullable=True),
        sa.Column('photo_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['pensioner_id'], ['pensioners.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    _indexes('certification_attempts', 'chat_user', 'pensioner_id', 'photo_hash')
    op.create_table(
        'face_templates',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('pensioner_id', sa.Integer(), nullable=False),
        sa.Column('model', sa.String(length=32), nullable=False),
        sa.Column('embedding', sa.JSON(), nullable=False),
        sa.Column('photo_path', sa.String(length=255), nullable=True),
        sa.Column('photo_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['pensioner_id'], ['pensioners.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('pensioner_id'),
    )
    op.create_table(
        'proxy_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('proxy_key', sa.String(length=160), nullable=False),
        sa.Column('pensioner_id', sa.Integer(), nullable=False),
        sa.Column('relationship', sa.String(length=16), nullable=False),
        sa.Column('consent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('consent_channel', sa.String(length=16), nullable=True),
        sa.Column('reminder_opt_in', sa.Boolean(), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['pensioner_id'], ['pensioners.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    _indexes('proxy_links', 'proxy_key')
    op.create_table(
        'case_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('author', sa.String(length=16), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id']),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_users.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    _indexes('case_messages', 'case_id')


def downgrade() -> None:
    for table in ('case_messages', 'proxy_links', 'face_templates', 'certification_attempts', 'cases',
                  'staff_users', 'pensioners', 'home_visit_requests', 'audit_log'):
        op.drop_table(table)
