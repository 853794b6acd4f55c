"""Postfix as orgmail's smarthost (DESIGN.md §9): a real, private Postfix between `orgmail serve` and a
"remote" SMTP server, whose own DSNs come back to orgmail's inbound listener."""
