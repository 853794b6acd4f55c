"""the mail edge (DESIGN.md §10): where a message came in, and the views Postfix reads

- `messages.source`: "api" for rows from `messages/send`, "smtp" for rows from submission; an index on
  (org_id, message_id) lets a resubmitted Message-ID find its row.
- `postfix_domains(name)`: every verified domain, Postfix's `virtual_mailbox_domains`.
- `postfix_mailboxes(address)`: every mailbox on a verified domain, Postfix's `virtual_mailbox_maps`.
  Neither view shows a password hash: Postfix only asks "is this a domain / a mailbox of ours?".

Like `dovecot_users`, the views are the contract a generated config depends on, never the tables.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CREATE_DOMAINS_VIEW = """
CREATE VIEW postfix_domains AS
SELECT name FROM domains WHERE status = 'verified'
"""

CREATE_MAILBOXES_VIEW = """
CREATE VIEW postfix_mailboxes AS
SELECT mailboxes.address AS address
FROM mailboxes JOIN domains ON domains.id = mailboxes.domain_id
WHERE domains.status = 'verified'
"""


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=8), nullable=False, server_default="api"))
        batch_op.create_index("ix_messages_org_id_message_id", ["org_id", "message_id"], unique=False)
    op.execute(CREATE_DOMAINS_VIEW)
    op.execute(CREATE_MAILBOXES_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW postfix_mailboxes")
    op.execute("DROP VIEW postfix_domains")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_org_id_message_id")
        batch_op.drop_column("source")
