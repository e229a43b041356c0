"""API blueprints, and ``services()``, the one way their views reach the app's services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from api.app import Services


def services() -> Services:
    """The current app's services (``app.extensions["meowstik"]``, built by api/app.py): the
    engine, the agents service and the store objects the views read, never a Redis client."""
    found: Services = current_app.extensions["meowstik"]
    return found
