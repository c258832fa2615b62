"""tradestore.urls: parsing, the async drivers, and the one scrub that keeps passwords out of every text."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy.engine import make_url

from tradestore import DatabaseManager
from tradestore.errors import ConfigurationError
from tradestore.urls import describe, mask, parse, resolve, scrub

#: Passwords with every character that breaks naive URL parsing, written into URLs unencoded.
PASSWORDS = [
    "p@ssword99",
    "p@ss:w0rd",
    "a:b@c",
    "x/y@z",
    "q?r@s",
    "a/b@c",
    "plain-secret",
    "Tr@de/2024",  # '@' then something that reads as a host and a path
    "x@h/db",
    "q?@/",
    "p@ss?x=1",
]


@pytest.mark.parametrize("password", PASSWORDS)
def test_an_unencoded_password_is_parsed_whole(password: str) -> None:
    url = resolve(f"postgresql://bot:{password}@db.example:5433/trading")
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "bot",
        password,
        "db.example",
        5433,
        "trading",
    )
    assert url.drivername == "postgresql+asyncpg"


def test_an_at_sign_in_the_query_stays_in_the_query() -> None:
    url = parse("postgresql://bot:Tr@de/2024@db.example/trading?application_name=bot@host")
    assert (url.password, url.host, url.database) == ("Tr@de/2024", "db.example", "trading")
    assert url.query["application_name"] == "bot@host"


@pytest.mark.parametrize("password", PASSWORDS)
def test_no_text_shows_any_part_of_the_password(password: str) -> None:
    raw = f"postgresql://bot:{password}@db.example/trading"
    manager = DatabaseManager(raw)
    texts = [repr(manager), str(manager), manager.database, mask(raw), mask(resolve(raw))]
    for text in texts:
        assert "***" in text
        # Not the password, nor any piece of it longer than two characters (e.g. 'ssword99').
        pieces = {password[i:j] for i in range(len(password)) for j in range(i + 3, len(password) + 1)}
        assert not [p for p in pieces if p in text.replace("db.example", "").replace("trading", "")], text


@pytest.mark.parametrize("password", PASSWORDS)
def test_scrub_cuts_the_password_in_every_encoding(password: str) -> None:
    url = resolve(f"postgresql://bot:{password}@h/db")
    for form in {password, quote(password, safe=""), quote_plus(password), quote(password), quote(password).lower()}:
        assert scrub(f"server said: password {form} rejected", url) == "server said: password *** rejected"


def test_an_encoded_password_is_decoded_and_still_masked() -> None:
    url = resolve("postgresql://bot:p%40ss%3Aw0rd@h/db")
    assert url.password == "p@ss:w0rd"
    assert "p%40ss" not in mask(url) and "p@ss" not in mask(url)


def test_describe_is_one_line_without_the_password() -> None:
    url = resolve("postgresql://bot:p@ss:w0rd@h/db")
    error = OSError("connect failed for bot:p@ss:w0rd\nsecond line")
    assert describe(error, url) == "OSError: connect failed for bot:***"
    assert describe(ValueError(), None) == "ValueError"


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://bot:hunter2@[::1/db",  # an IPv6 host never closed
        "postgresql://bot:hunter2@host:notaport/db",
        "postgresql://bot:hunter2@host:5432:5/db",
        "not a url hunter2",
    ],
)
def test_an_unparsable_url_is_a_configuration_error_quoting_no_secret(raw: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        DatabaseManager(raw)
    message = str(caught.value)
    assert "hunter2" not in message
    assert mask(raw) == "<unparsable database URL>"


def test_sqlite_urls_keep_their_path_and_memory() -> None:
    assert mask("sqlite:///data/bot@home.db") == "sqlite:///data/bot@home.db"
    assert resolve("sqlite:///data/bot@home.db").database == "data/bot@home.db"
    assert parse("sqlite+aiosqlite:///:memory:").database == ":memory:"
    assert resolve("sqlite:///x.db").drivername == "sqlite+aiosqlite"


def test_a_password_in_the_query_moves_into_the_password_part() -> None:
    url = resolve("postgresql://bot@h/db?password=p@ss&sslmode=disable")
    assert url.password == "p@ss" and dict(url.query) == {"sslmode": "disable"}
    assert "p@ss" not in mask(url)


def test_a_url_object_passes_through() -> None:
    given = make_url("postgresql://bot:s3cret@h/db")
    assert parse(given) is given


def test_unsupported_scheme_names_the_supported_ones() -> None:
    with pytest.raises(ConfigurationError, match="supported: sqlite://"):
        resolve("mysql://bot:hunter2@h/db")
