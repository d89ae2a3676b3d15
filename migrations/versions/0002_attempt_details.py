"""certification_attempts.details: the liveness evidence of each attempt (issue 21)."""
import sqlalchemy as sa
from alembic import op

revision = '0002_attempt_details'
down_revision = '0001'


def upgrade() -> None:
    with op.batch_alter_table('certification_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('details', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('certification_attempts', schema=None) as batch_op:
        batch_op.drop_column('details')
