"""dovecot_users: the read-only view Dovecot's SQL passdb/userdb reads

Dovecot's generated config depends on this view's four columns, never on the tables, so a change to
`mailboxes` only has to keep the view's shape. The view holds no paths: Dovecot's query builds the
home from the mail root in its config (`<mail root>/<mailbox_id>`), which only the deployment knows.

- address: the login and LMTP recipient, stored lower-cased (Dovecot looks up '%Lu')
- password_hash: '{ARGON2ID}$argon2id$…'
- mailbox_id: names the mailbox home under the mail root (storage is keyed by id, not address)
- quota_rule: Dovecot's quota rule ('*:storage=<quota_mb>M'), NULL for no quota

Gotcha for later revisions: on SQLite, Alembic's batch mode rebuilds a table by renaming a copy, and
SQLite refuses to rename while a view names a missing table; drop this view before a batch migration
of `mailboxes` and create it again after.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:00:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Plain SQL that SQLite and PostgreSQL both read the same way ('\:' keeps SQLAlchemy from taking
# ':storage' for a bind parameter).
CREATE_VIEW = r"""
CREATE VIEW dovecot_users AS
SELECT
    address,
    password_hash,
    id AS mailbox_id,
    CASE WHEN quota_mb IS NULL THEN NULL
         ELSE '*\:storage=' || CAST(quota_mb AS VARCHAR(12)) || 'M' END AS quota_rule
FROM mailboxes
"""


def upgrade() -> None:
    op.execute(CREATE_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW dovecot_users")
