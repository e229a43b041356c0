"""Ids and queue names: a step's job id, an agent slot's member, the Celery queues. Pure."""

from __future__ import annotations


def capability_queue(capability: str) -> str:
    """The Celery queue of one capability."""
    return f"cap.{capability}"


def agent_queue(agent_id: str) -> str:
    """The Celery queue of one agent hosted by `meowstik worker` processes."""
    return f"agent.{agent_id}"


REMOTE_EXECUTOR_QUEUE = "executor.remote"
"""The queue of HTTP and LLM agents, consumed by workers started with --remote."""


def slot_member(session_id: str, step_id: str) -> str:
    return f"{session_id}|{step_id}"


def job_id(session_id: str, step_id: str) -> str:
    """The deterministic Celery task id of a step (also its jobId in the REST contract)."""
    return f"{session_id}.{step_id}"
