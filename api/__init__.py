"""The Flask API: ``create_app()`` is the WSGI application factory (gunicorn "api:create_app()")."""

from api.app import create_app

__all__ = ["create_app"]
