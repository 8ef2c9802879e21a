"""The console under ``/admin``: its pages, its static files, its error pages and
the security headers on every answer."""

from __future__ import annotations

from pathlib import Path

from jinja2 import StrictUndefined
from litestar import Router
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from app.console.controllers.admin import TenantAdminController
from app.console.controllers.auth import ConsoleAuthController
from app.console.controllers.metrics import MetricsController
from app.console.controllers.models import ModelsPageController
from app.console.controllers.queue import QueueController
from app.console.controllers.tasks import TaskController
from app.console.providers import console_dependencies
from app.console.security import console_error, secure_headers

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "console_router", "console_templates"]

_HERE = Path(__file__).parent
TEMPLATES_DIR = _HERE / "templates"
STATIC_DIR = _HERE / "static"


def console_templates() -> TemplateConfig[JinjaTemplateEngine]:
    """The Jinja templates of the console's pages (autoescaped; a name a page does
    not get is an error, not an empty string)."""

    def strict(engine: JinjaTemplateEngine) -> None:
        engine.engine.undefined = StrictUndefined

    return TemplateConfig(
        directory=TEMPLATES_DIR, engine=JinjaTemplateEngine, engine_callback=strict
    )


def console_router() -> Router:
    """Every ``/admin`` route, with the console's providers and error pages."""
    static = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        name="console_static",
        cache_control=CacheControlHeader(max_age=300),
        include_in_schema=False,
    )
    return Router(
        path="/admin",
        route_handlers=[
            ConsoleAuthController,
            QueueController,
            TaskController,
            TenantAdminController,
            ModelsPageController,
            MetricsController,
            static,
        ],
        dependencies=console_dependencies(),
        exception_handlers={Exception: console_error},
        after_request=secure_headers,
        include_in_schema=False,
    )
