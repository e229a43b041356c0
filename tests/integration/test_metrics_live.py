"""/metrics on a real cluster parses with Prometheus' text parser and matches the session."""

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.plans import step

pytestmark = pytest.mark.integration


def samples(api_url: str) -> dict[tuple[str, tuple], float]:
    response = requests.get(f"{api_url}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_step_counters_equal_the_sessions_step_counts(cluster):
    plan = {
        "steps": [
            step("E1", "echo_work"),
            step("E2", "echo_work"),
            step("E3", "echo_work"),
            step("X", "broken_work"),
        ]
    }
    done = cluster.wait_session(
        cluster.submit({"goal": "metrics", "plan": plan, "failurePolicy": "continue"})["sessionId"]
    )
    assert done["completedTasks"] == 3 and done["failedTasks"] == 1
    seen = samples(cluster.api_url)
    completed = seen[
        ("meowstik_steps_total", (("capability", "echo_work"), ("outcome", "completed")))
    ]
    failed = seen[("meowstik_steps_total", (("capability", "broken_work"), ("outcome", "failed")))]
    assert (completed, failed) == (3, 1)  # this module's cluster starts from an empty Redis
    assert seen[("meowstik_step_duration_seconds_count", (("capability", "echo_work"),))] == 3
    assert seen[("meowstik_sessions", (("status", "failed"),))] >= 1
    assert seen[("meowstik_agent_capacity", (("agent", "echo-001"), ("type", "tester")))] == 4
