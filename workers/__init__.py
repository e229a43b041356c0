"""The Celery side: the app and its configuration, the step task, agents and their hosting."""
