"""The repository itself: no merge-conflict markers left in any tracked text file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(rb"^(<{7} |={7}$|>{7} )", re.MULTILINE)


def test_no_conflict_markers_in_tracked_files():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    offenders = [
        name
        for name in tracked.decode().split("\0")
        if name and (ROOT / name).is_file() and MARKER.search((ROOT / name).read_bytes())
    ]
    assert offenders == []
