import json
import logging

from orchestrator.jsonlog import JsonFormatter


def test_a_log_record_becomes_one_json_line_with_the_ids_it_was_given():
    record = logging.LogRecord(
        "workers.runtime", logging.INFO, __file__, 1, "step %s", ("done",), None
    )
    record.sessionId, record.stepId = "orch-1-a", "step-2"
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "step done" and entry["level"] == "info"
    assert entry["sessionId"] == "orch-1-a" and entry["stepId"] == "step-2"
    assert "agentId" not in entry


def test_an_exception_is_kept_in_the_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]
