"""The console's dependency providers: each reads one part the lifespan opened."""

from __future__ import annotations

from typing import Any, cast

from litestar.datastructures import State
from litestar.di import Provide

from app.console.accounts import ConsoleAccounts
from app.console.login_throttle import LoginThrottle
from app.console.metrics_history import MetricsHistory
from app.console.sessions import SessionStore
from safety.audit import VerdictStore

__all__ = ["console_dependencies"]


def provide_console_accounts(state: State) -> ConsoleAccounts:
    return cast("ConsoleAccounts", state.console_accounts)


def provide_console_sessions(state: State) -> SessionStore:
    return cast("SessionStore", state.console_sessions)


def provide_login_throttle(state: State) -> LoginThrottle:
    return cast("LoginThrottle", state.login_throttle)


def provide_console_verdicts(state: State) -> VerdictStore:
    return cast("VerdictStore", state.console_verdicts)


def provide_db_sessions(state: State) -> Any:
    """The app's database session factory (``async_sessionmaker``)."""
    return state.sessions


def provide_metrics_history(state: State) -> MetricsHistory:
    return cast("MetricsHistory", state.metrics_history)


def console_dependencies() -> dict[str, Provide]:
    """The providers of the console's own parts (the app's serve the rest)."""
    return {
        "console_accounts": Provide(provide_console_accounts, sync_to_thread=False),
        "console_sessions": Provide(provide_console_sessions, sync_to_thread=False),
        "login_throttle": Provide(provide_login_throttle, sync_to_thread=False),
        "console_verdicts": Provide(provide_console_verdicts, sync_to_thread=False),
        "db_sessions": Provide(provide_db_sessions, sync_to_thread=False),
        "metrics_history": Provide(provide_metrics_history, sync_to_thread=False),
    }
