"""Structured process logs: one JSON object per line, with session, step, agent and task ids
when the log call gives them (``log.info("...", extra={"sessionId": ..., "stepId": ...})``)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

ID_FIELDS = ("sessionId", "stepId", "agentId", "taskId", "jobId", "worker")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name in ID_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(log_format: str, level: str = "INFO") -> None:
    """Send the root logger to stdout, as JSON (``json``) or plain text (``text``)."""
    handler = logging.StreamHandler(sys.stdout)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
