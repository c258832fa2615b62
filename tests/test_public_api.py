"""The front door: what ``import tradestore`` offers."""

import tradestore
from tradestore import errors


def test_public_names() -> None:
    assert tradestore.__all__ == sorted(tradestore.__all__)
    assert set(tradestore.__all__) == {
        "DatabaseManager",
        "Health",
        "OHLCVBar",
        "OHLCVRepository",
        "Position",
        "PositionRepository",
        "SeriesInfo",
        "SystemEvent",
        "SystemEventRepository",
        "Trade",
        "TradeRepository",
        "TradeStatistics",
    }


def test_error_tree() -> None:
    assert issubclass(errors.ValidationError, errors.StorageError) and issubclass(errors.ValidationError, ValueError)
    assert issubclass(errors.ConfigurationError, errors.StorageError) and issubclass(
        errors.ConfigurationError, ValueError
    )
    assert issubclass(errors.NotFoundError, errors.StorageError) and issubclass(errors.NotFoundError, LookupError)
