"""`OutboxRelay`, the embedded default: each message becomes a `.eml` file in the data folder."""

from __future__ import annotations

import asyncio
import os
import tempfile
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from orgmail.mail.relay import DsnRequest, RelayResult


class OutboxRelay:
    """Writes each message to `<outbox>/<Message-ID>.eml`: written to a temporary file, flushed to
    disk, then renamed, so a reader never sees half a message."""

    def __init__(self, directory: Path):
        self.directory = directory

    async def send(
        self, *, sender: str, recipients: list[str], message: bytes, dsn: DsnRequest | None = None
    ) -> RelayResult:
        """Writes the message; `dsn` is ignored: no relay, no delivery status notifications."""
        path = await asyncio.to_thread(self._write, message)
        return RelayResult(accepted=list(recipients), response=f"250 written to {path}")

    def _write(self, message: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{_file_name(message)}.eml"
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(message)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    async def close(self) -> None:
        return None


def _file_name(message: bytes) -> str:
    """The Message-ID without its brackets, made safe as a file name."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(message, headersonly=True)
    message_id = str(headers.get("Message-ID", "")).strip().strip("<>")
    safe = "".join(ch if ch.isalnum() or ch in "._@+-" else "_" for ch in message_id)
    return safe or f"message-{os.urandom(8).hex()}"
