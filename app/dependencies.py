"""Litestar dependency providers: the services and the caller."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State

from app.auth import Principal
from app.services import Services


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.user
    return principal
