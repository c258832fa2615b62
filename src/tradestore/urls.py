"""Database URLs: the default, the switch to the async drivers, and keeping passwords out of text.

This module is the one place that turns a URL or an error into text a person may see:
:func:`mask` for a URL, :func:`scrub` for any text that may quote a password,
:func:`describe` for an exception. Every message of tradestore that names a database or
quotes a driver goes through them.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, quote_plus, unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from tradestore.errors import ConfigurationError

ENV_VAR = "TRADESTORE_DATABASE_URL"
DEFAULT_URL = "sqlite+aiosqlite:///data/tradestore.db"

#: Scheme given → the async driver's scheme tradestore uses.
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
SUPPORTED_SCHEMES = tuple(_DRIVERS)
_SECRET_QUERY_KEYS = ("password", "passwd", "pass")


def resolve(url: str | URL | None = None) -> URL:
    """Return the async-driver URL for ``url``, the environment, or the embedded default.

    A password given in the query string (``?password=…``) is moved into the URL's password
    part, so that SQLAlchemy masks it wherever it prints the URL.

    Raises:
        ConfigurationError: for a URL that does not parse or a scheme tradestore does not support.
    """
    raw = url if url is not None else os.environ.get(ENV_VAR) or DEFAULT_URL
    parsed = parse(raw)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigurationError(
            f"database_url: unsupported scheme {parsed.drivername!r}; "
            f"supported: {', '.join(s + '://' for s in SUPPORTED_SCHEMES)}"
        )
    parsed = parsed.set(drivername=driver)
    for key in _SECRET_QUERY_KEYS:
        if key in parsed.query:
            secret = parsed.query[key]
            value = secret[-1] if isinstance(secret, tuple) else secret
            parsed = parsed.difference_update_query([key]).set(password=value)
    return parsed


_SCHEME = re.compile(r"(?P<scheme>[\w+.-]+)://(?P<rest>.*)", re.DOTALL)
#: What may follow the '@' that ends the user name and password, up to the end: a host (a name,
#: an address or a bracketed IPv6 address; empty for a Unix socket), an optional numeric port,
#: an optional database path (with no '@' or '?'), an optional query (anything).
_AUTHORITY = re.compile(r"(?:\[[^\]]*\]|[^@/?:\[\]]*)(?::\d*)?(?P<path>/[^@?]*)?(?:\?.*)?", re.DOTALL)


def _userinfo_end(rest: str) -> int:
    """Where the user name and password of ``rest`` (a URL after '//') end: the '@' before the host, or -1.

    A password may hold '@', '/' and '?' unencoded, so several '@' may each be followed by
    something that reads as a host. The one chosen is the first followed by a host and a database
    path (with no '@'); failing that, the first followed by a host alone. So ``u:Tr@de/2024@db/x``
    ends at the second '@', and an '@' in the query (``db/x?application_name=a@b``) stays there.
    """
    bare = -1
    for i, c in enumerate(rest):
        if c == "@" and (found := _AUTHORITY.fullmatch(rest, i + 1)) is not None:
            if found["path"] is not None:
                return i
            if bare < 0:
                bare = i
    return bare


def parse(url: str | URL) -> URL:
    """Parse a URL whose user name or password may hold unencoded ``@``, ``:``, ``/`` or ``?``.

    The user name and password end at the ``@`` before the host (see :func:`_userinfo_end`), so
    ``postgresql://bot:p@ss:w0rd@db.example/bot`` has the password ``p@ss:w0rd``.
    Percent-encoded text (``p%40ss``) is decoded, as SQLAlchemy does.

    Raises:
        ConfigurationError: the text is not a URL tradestore can read; the message quotes
            none of it but the scheme.
    """
    if isinstance(url, URL):
        return url
    if not isinstance(url, str):
        raise ConfigurationError(f"database_url: expected a str or sqlalchemy URL, got {type(url).__name__}")
    found = _SCHEME.fullmatch(url.strip())
    if found is None:
        raise ConfigurationError(f"database_url: not a URL; expected e.g. {DEFAULT_URL}")
    scheme, rest = found["scheme"], found["rest"]
    parsed: URL | None = None
    try:
        # A path right after '//' ('sqlite:///data/bot@home.db') has no user name or password.
        at = -1 if rest.startswith("/") else _userinfo_end(rest)
        if at >= 0:
            # make_url would end the password at its first '@': split where the host starts ourselves.
            user, colon, password = rest[:at].partition(":")
            parsed = make_url(f"{scheme}://{rest[at + 1 :]}").set(
                username=unquote(user) or None, password=unquote(password) if colon else None
            )
        else:
            parsed = make_url(f"{scheme}://{rest}")
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        parsed = None
    if parsed is None or "@" in (parsed.host or ""):
        raise ConfigurationError(
            f"database_url: cannot parse this {scheme}:// URL (its text is not shown, as it may hold a "
            "password); percent-encode special characters of the user name and password (@ as %40, / as %2F)"
        )
    return parsed


def mask(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``; never raises."""
    if isinstance(url, str):
        try:
            url = parse(url)
        except ConfigurationError:
            return "<unparsable database URL>"
    if is_sqlite(url):  # no password to hide; keep the path readable (':memory:' unquoted)
        return f"{url.drivername}:///{url.database or ':memory:'}"
    for key in _SECRET_QUERY_KEYS:
        if key in url.query:
            url = url.update_query_dict({key: "***"})
    return url.render_as_string(hide_password=True)


def scrub(text: str, url: URL | None) -> str:
    """``text`` with ``url``'s password replaced by ``***``, plain or URL-encoded (any encoding).

    For driver, server and tool messages, which may quote what they were given.
    """
    password = None if url is None else url.password
    if not password:
        return text
    secret = str(password)
    forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret), quote(secret, safe="@:")}
    forms |= {form.lower() for form in forms if "%" in form}  # %2f as well as %2F
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def describe(error: BaseException, url: URL | None) -> str:
    """``error``'s type and the first line of its text, with ``url``'s password cut out.

    Driver messages can run to many lines (a query, a hint): one line is what a log or a
    report can carry.
    """
    text = str(error).strip()
    message = f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
    return scrub(message, url)


def is_sqlite(url: URL) -> bool:
    """Whether ``url`` names a SQLite database."""
    return url.get_backend_name() == "sqlite"


def is_memory(url: URL) -> bool:
    """Whether ``url`` names an in-memory SQLite database."""
    return is_sqlite(url) and url.database in (None, "", ":memory:")


def backend_name(url: URL) -> str:
    """``'sqlite'`` or ``'postgresql'``."""
    return url.get_backend_name()
