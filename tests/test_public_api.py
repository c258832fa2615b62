"""The front door: what ``import tradestore`` offers."""

import sqlalchemy.exc

import tradestore
from tradestore import errors


def test_public_names() -> None:
    assert tradestore.__all__ == sorted(tradestore.__all__)
    assert set(tradestore.__all__) == {
        "ALL_EXCHANGES",
        "Bot",
        "BotRepository",
        "ConfigurationError",
        "ConflictError",
        "ConnectionLostError",
        "DatabaseManager",
        "Decision",
        "DecisionRepository",
        "DuplicateError",
        "EquityRepository",
        "EquitySnapshot",
        "Fill",
        "Health",
        "InvalidTransitionError",
        "NotConnectedError",
        "NotFoundError",
        "OHLCVBar",
        "OHLCVRepository",
        "Order",
        "OrderRepository",
        "OrderStatusChange",
        "PerformanceReport",
        "Position",
        "Proposal",
        "ProposalRepository",
        "PositionRepository",
        "ReadOnlyError",
        "Recovery",
        "SchemaError",
        "SeriesInfo",
        "StrategyPerformance",
        "StorageBusyError",
        "StorageError",
        "SystemEvent",
        "SystemEventRepository",
        "Trade",
        "TradeRepository",
        "TradeStatistics",
        "TransactionAbortedError",
        "TransientError",
        "ValidationError",
    }


def test_every_error_is_importable_from_the_package_root() -> None:
    classes = {name for name, value in vars(errors).items() if isinstance(value, type) and name[0] != "_"}
    raised = {name for name in classes if issubclass(getattr(errors, name), errors.StorageError)}
    assert raised <= set(tradestore.__all__)
    assert all(getattr(tradestore, name) is getattr(errors, name) for name in raised)


def test_error_tree() -> None:
    assert issubclass(errors.ValidationError, errors.StorageError) and issubclass(errors.ValidationError, ValueError)
    assert issubclass(errors.ConfigurationError, errors.StorageError) and issubclass(
        errors.ConfigurationError, ValueError
    )
    assert issubclass(errors.NotFoundError, errors.StorageError) and issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.ReadOnlyError, errors.StorageError)
    assert not issubclass(errors.ReadOnlyError, errors.TransientError)  # retrying never helps
    assert issubclass(errors.ConflictError, errors.ValidationError)
    assert issubclass(errors.InvalidTransitionError, errors.ValidationError)


def test_old_and_new_except_clauses_both_catch() -> None:
    """Seed code catches SQLAlchemy's errors; new code catches tradestore's: both work."""
    for cls in (errors.StorageBusyError, errors.ConnectionLostError):
        assert issubclass(cls, sqlalchemy.exc.OperationalError) and issubclass(cls, errors.TransientError)
        error = cls("busy", OSError("driver"))
        assert str(error) == "busy" and isinstance(error.orig, OSError)
    assert issubclass(errors.DuplicateError, sqlalchemy.exc.IntegrityError)
    assert issubclass(errors.DuplicateError, errors.StorageError)
    # A programming mistake is never caught by a retry loop around transient or SQLAlchemy errors.
    assert not issubclass(errors.NotConnectedError, errors.TransientError | sqlalchemy.exc.SQLAlchemyError)
