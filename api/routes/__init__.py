"""API blueprints."""
