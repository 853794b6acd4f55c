"""Sending (DESIGN.md §5), one module per concern:

- `validation`: what a send asks for, and what can be refused without the database;
- `senders`: the org's verified domain the From address is on, with its DKIM keys;
- `pipeline`: `SendPipeline.send`, the stages in order
  (validate → idempotent replay? → resolve the sender domain → drop suppressed → build and sign
  → write the row → relay → record the result), and `SendPipeline.submit`, SMTP submission's door
  into the same stages (resubmitted Message-ID? → resolve → drop suppressed → finish and sign → …);
- `submission`: what a submission's credentials, recipients and message mean (DESIGN.md §10);
- `relaying`: the relay stage and what its answer does to the row;
- `retries`: replays of a key seen before, and rows a crash left `queued`.
"""

from orgmail.core.sending.pipeline import SendPipeline
from orgmail.core.sending.relaying import ReturnPath
from orgmail.core.sending.retries import settle_unfinished_sends
from orgmail.core.sending.validation import Attachment, Limits, SendRequest

__all__ = ["Attachment", "Limits", "ReturnPath", "SendPipeline", "SendRequest", "settle_unfinished_sends"]
