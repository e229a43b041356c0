"""The pure core: models, statuses, errors, the plan graph, selection, step input and result,
snapshot and stats building, registration and access rules, ids and queue names, the log entry.

Nothing here does I/O or imports redis, celery, kombu, flask or requests (a test proves it in a
fresh interpreter): time and ids come in as arguments.
"""
