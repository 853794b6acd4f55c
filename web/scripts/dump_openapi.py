"""Print the service's OpenAPI document without starting a server (input to the client's types).

The admin router mounts only when an admin token is set, so one is set here: the client's types then
include the admin operations too. The data folder is a throwaway; nothing touches a database.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

with tempfile.TemporaryDirectory(prefix="orgmail-openapi-") as data_dir:
    os.environ.update(
        ORGMAIL_DATA_DIR=data_dir,
        ORGMAIL_SECRET_KEY="openapi-dump",
        ORGMAIL_ADMIN_TOKEN="openapi-dump",
    )
    from orgmail.app import create_app
    from orgmail.config import load_settings

    document = create_app(load_settings()).openapi()

json.dump(document, sys.stdout, indent=2, sort_keys=True)
sys.stdout.write("\n")
