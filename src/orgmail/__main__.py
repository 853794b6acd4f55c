"""`python -m orgmail`: the CLI, for a process that must run the same installation as its parent."""

from orgmail.cli import app

app(prog_name="orgmail")
