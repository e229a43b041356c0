"""The Celery app Flower runs with: ``celery -A workers.flower_app flower`` (``cli.commands``).

Flower talks to the workers through the broker (remote control, events) and reads queue depths
from it, so it needs the workers' broker configuration, not just the URL: above all kombu's
``global_keyprefix`` (MEOWSTIK_KEY_PREFIX), without which it would look at another deployment's
queues, or none. This module is the process edge of Flower: the settings come from the
environment (MEOWSTIK_REDIS_URL, MEOWSTIK_KEY_PREFIX, ...) when Celery's command line imports it.
"""

from __future__ import annotations

from orchestrator.settings import Settings
from workers.celery_app import create_celery_app

app = create_celery_app(Settings())
