"""The mail store: Maildir folders under the data folder, one per mailbox, keyed by mailbox id.

Keying by id (not address) means a re-created address never sees an old mailbox's mail.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol


class MailStore(Protocol):
    def provision(self, mailbox_id: str) -> Path: ...

    def retire(self, mailbox_id: str) -> None: ...


class MaildirStore:
    def __init__(self, root: Path):
        self.root = root.resolve()

    def home(self, mailbox_id: str) -> Path:
        path = (self.root / mailbox_id).resolve()
        # Never touch anything outside the store, whatever the id says.
        if path.parent != self.root:
            raise ValueError(f"mailbox id {mailbox_id!r} escapes the mail store")
        return path

    def maildir(self, mailbox_id: str) -> Path:
        return self.home(mailbox_id) / "Maildir"

    def provision(self, mailbox_id: str) -> Path:
        maildir = self.maildir(mailbox_id)
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        return maildir

    def retire(self, mailbox_id: str) -> None:
        shutil.rmtree(self.home(mailbox_id), ignore_errors=True)
