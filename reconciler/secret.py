"""What counts as a secret in a URL or a connection string, and how every output shows a secret: `***`.

One definition for the places that meet URLs: `validate` refuses a party file URL that carries a secret
(`secret-in-git`), `output.plan` hides the same parts of a URL read from the database, and the database a
command uses is named by `mask_conninfo`. A connection string (a `postgresql://` URL or libpq's
key=value settings) is read by libpq itself, never by searching its text, so no part of a password that
libpq would use can be left over; `hide_secrets` is the one function for any other text that is shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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


#: Settings of libpq that hold a secret.
SECRET_SETTINGS = ("password", "sslpassword")
#: The settings that name the server, shown first.
_FIRST_SETTINGS = ("host", "hostaddr", "port", "dbname", "user")
#: A URL of a scheme other than libpq's: never a connection string.
_OTHER_URL = re.compile(r"^(?!postgres(?:ql)?://)[A-Za-z][A-Za-z0-9+.-]*://")


def mask_conninfo(params: Mapping[str, str]) -> str:
    """libpq's settings as a key=value string that names the database and shows every secret as `***`.

    The one way this tool shows a database or connection string: built from libpq's own reading of the
    string (`conninfo_to_dict`), never by searching the text, so no part of a password can be left over.
    """
    from psycopg.conninfo import make_conninfo  # a third of a second to import: never for validate

    ordered = sorted(params, key=lambda key: (*_FIRST_SETTINGS, key).index(key))
    shown = {key: MASK if key in SECRET_SETTINGS else params[key] for key in ordered}
    return make_conninfo(**shown) if shown else "libpq's defaults"


def _conninfo(text: str) -> dict[str, str] | None:
    """libpq's reading of `text` when it is a connection string; None when libpq does not read it as one."""
    if _OTHER_URL.match(text) or ("=" not in text and "://" not in text):
        return None
    import psycopg  # a third of a second to import: only when a text may be a connection string
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(text)
    except psycopg.ProgrammingError:
        return None
    return {key: str(value) for key, value in params.items() if value is not None}


def hide_secrets(text: str) -> str:
    """`text`, about to be shown, with every secret it carries as `***`; text without one unchanged.

    A connection string that holds a password (`postgresql://u@h/db?password=...`, `password=... host=h`)
    is shown as libpq read it (`mask_conninfo`); any other URL keeps its form and loses its password and
    the values of its secret parameters (`hide_url_secrets`).
    """
    params = _conninfo(text)
    if params is None:
        return hide_url_secrets(text)
    return mask_conninfo(params) if any(params.get(key) for key in SECRET_SETTINGS) else text


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with each known secret that stands alone (not inside a longer word) replaced by `***`.

    For words of libpq and the server, which do not quote a password but might: a secret inside an ordinary
    word is a coincidence of letters, not the secret, and is left alone.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", MASK, text)
    return text
