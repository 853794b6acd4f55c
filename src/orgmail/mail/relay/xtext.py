"""xtext (RFC 3461 §4), the encoding of the DSN parameters ENVID and ORCPT: any octet outside "!" (33)
to "~" (126), and "+" and "=", becomes "+" and two upper-case hex digits; e.g. `a+b@x` is `a+2Bb@x`."""

from __future__ import annotations

import re

_PLAIN = frozenset(range(33, 127)) - {ord("+"), ord("=")}
_HEXCHAR = re.compile(r"\+([0-9A-Fa-f]{2})")


def encode_xtext(text: str) -> str:
    """`text` as xtext; characters beyond ASCII as the hex of their UTF-8 octets."""
    return "".join(chr(octet) if octet in _PLAIN else f"+{octet:02X}" for octet in text.encode("utf-8"))


def decode_xtext(xtext: str) -> str:
    """The text an xtext stands for. Lower-case hex digits are read too (a liberal reading of what
    other MTAs write, as in their DSNs); ValueError if it is no xtext at all."""
    octets = bytearray()
    position = 0
    while position < len(xtext):
        character = xtext[position]
        if character == "+":
            hexchar = _HEXCHAR.match(xtext, position)
            if hexchar is None:
                raise ValueError(f"not xtext: '+' without two hex digits at {position} in {xtext!r}")
            octets.append(int(hexchar.group(1), 16))
            position += 3
        elif ord(character) in _PLAIN:
            octets.append(ord(character))
            position += 1
        else:
            raise ValueError(f"not xtext: {character!r} at {position} in {xtext!r}")
    return octets.decode("utf-8")  # UnicodeDecodeError is a ValueError
