"""What counts as a secret in a URL, and how every output shows a secret: `***`.

One definition for the two places that meet URLs: `validate` refuses a party file URL that carries a
secret (`secret-in-git`), and `render` hides the same parts of a URL read from the database.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

#: What every output shows in place of a secret.
MASK = "***"

#: Query (or fragment) parameters whose value is a credential, compared in lower case with `-` as `_`:
#: `token`, `access_token`, `apikey`, `api-key`, `password`, `client_secret`, `X-Amz-Signature`, ...
_SECRET_PARAMETER = re.compile(
    r"^(?:\w*_)?(?:\w*token|password|passwd|pwd|pass|\w*secret|key|apikey|api_key|auth|authorization"
    r"|credentials?|signature|sig)$"
)
#: Where a URL may carry a secret at all; a URL with none of these characters has none.
_MAY_CARRY = re.compile(r"[@?#]")


def is_secret_parameter(name: str) -> bool:
    return _SECRET_PARAMETER.match(name.strip().lower().replace("-", "_")) is not None


def _split(text: str) -> SplitResult | None:
    if "://" not in text or _MAY_CARRY.search(text) is None:
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    return parts if parts.netloc else None


def _pairs(text: str) -> list[tuple[str, str, str]]:
    """`a=1&b` -> [("a", "=", "1"), ("b", "", "")], the parts of each parameter as written."""
    return [pair.partition("=") for pair in text.split("&")] if text else []


def url_secrets(text: str) -> list[str]:
    """Where the URL `text` carries a credential: `user info` and `query parameter <name>`; [] if nowhere."""
    parts = _split(text)
    if parts is None:
        return []
    found = ["user info"] if "@" in parts.netloc else []
    for where, component in (("query", parts.query), ("fragment", parts.fragment)):
        found += [
            f"{where} parameter {name}"
            for name, _, value in _pairs(component)
            if value and is_secret_parameter(name)
        ]
    return found


def _hide_parameters(component: str) -> str:
    return "&".join(
        f"{name}={MASK}" if value and is_secret_parameter(name) else f"{name}{equals}{value}"
        for name, equals, value in _pairs(component)
    )


def hide_url_secrets(text: str, *, user: bool = True) -> str:
    """`https://user:secret@host/x?token=t` -> `https://user:***@host/x?token=***`; other text unchanged.

    The user name stays (it says which account) unless `user` is False, when the whole user info goes; the
    password and every secret parameter's value go.
    """
    parts = _split(text)
    if parts is None:
        return text
    hidden = parts._replace(query=_hide_parameters(parts.query), fragment=_hide_parameters(parts.fragment))
    userinfo, at, host = parts.netloc.rpartition("@")
    if at and not user:
        hidden = hidden._replace(netloc=f"{MASK}@{host}")
    elif parts.password:
        hidden = hidden._replace(netloc=f"{userinfo.partition(':')[0]}:{MASK}@{host}")
    return text if hidden == parts else urlunsplit(hidden)
