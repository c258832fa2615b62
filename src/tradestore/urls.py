"""Database URLs: the default, the switch to the async drivers, and password masking."""

from __future__ import annotations

import os
from urllib.parse import quote, quote_plus

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
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise ConfigurationError(f"database_url: cannot parse {mask(raw)!r}; expected e.g. {DEFAULT_URL}") from None
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


def mask(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return "<unparsable database URL>"
    if is_sqlite(url):  # no password to hide; keep the path readable (':memory:' unquoted)
        return f"{url.drivername}:///{url.database or ':memory:'}"
    for key in _SECRET_QUERY_KEYS:
        if key in url.query:
            url = url.update_query_dict({key: "***"})
    return url.render_as_string(hide_password=True)


def scrub(text: str, url: URL) -> str:
    """``text`` with ``url``'s password replaced by ``***``, plain or URL-encoded.

    For driver and server messages, which may quote what they were given.
    """
    password = url.password
    if not password:
        return text
    secret = str(password)
    for form in sorted({secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def is_sqlite(url: URL) -> bool:
    """Whether ``url`` names a SQLite database."""
    return url.get_backend_name() == "sqlite"


def is_memory(url: URL) -> bool:
    """Whether ``url`` names an in-memory SQLite database."""
    return is_sqlite(url) and url.database in (None, "", ":memory:")


def backend_name(url: URL) -> str:
    """``'sqlite'`` or ``'postgresql'``."""
    return url.get_backend_name()
