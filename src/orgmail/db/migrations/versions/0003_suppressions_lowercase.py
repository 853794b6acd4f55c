"""suppressions are stored lower-cased whole, so matching is case-insensitive

Earlier rows kept the local part's case; lower-case them, keeping the oldest row where two spellings
of one address were both suppressed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 14:30:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DELETE FROM suppressions
        WHERE id IN (
            SELECT newer.id FROM suppressions newer
            JOIN suppressions older
              ON older.org_id = newer.org_id AND lower(older.email) = lower(newer.email) AND older.id < newer.id
        )
        """
    )
    op.execute("UPDATE suppressions SET email = lower(email) WHERE email <> lower(email)")


def downgrade() -> None:
    pass  # the original spellings are gone; lower-case rows are valid for the old code too
