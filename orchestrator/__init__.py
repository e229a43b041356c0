"""Meowstik orchestration domain: models, plan graph, planners, agent registry, state and engine.

This package never imports Flask or Celery: the API (`api`) and the Celery side (`workers`)
both depend on it, never the other way round.
"""
