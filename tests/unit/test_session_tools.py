"""The built-in tools that work on a session (orchestrator/core/builtin_tools.py), called the way
a model's tool call is (``ToolRegistry.invoke``) on a step claimed in a running session: state,
the workspace with its limits and path rules, and ask_operator through the operator-input
request. On fakeredis and a real redis-server."""

from __future__ import annotations

import pytest

from orchestrator.core.builtin_tools import BUILTIN_TOOLS
from orchestrator.core.models import OrchestrateRequest
from orchestrator.core.steps import InputRequired
from orchestrator.core.tools import ToolContext, ToolRegistry
from orchestrator.settings import Settings
from orchestrator.store.keys import Keys
from orchestrator.store.state import StateManager
from tests.support.world import build_world

PREFIX = "t"
MAX_FILE_BYTES, MAX_FILES = 64, 3


class Session:
    """Given a session of two steps (t keeps it running) with step s claimed by the
    researcher: invoke tools as that step."""

    def __init__(self, client) -> None:
        settings = Settings(workspace_max_file_bytes=MAX_FILE_BYTES, workspace_max_files=MAX_FILES)
        self.world = build_world(client, settings, prefix=PREFIX)
        steps = [{"id": i, "title": i, "requiredCapabilities": ["web_research"]} for i in "st"]
        request = OrchestrateRequest.model_validate({"goal": "g", "plan": {"steps": steps}})
        self.sid = self.world.engine.submit(request).session_id
        self.run = self.world.lifecycle.begin(self.sid, "s", "researcher-001")
        self.tools = ToolRegistry(BUILTIN_TOOLS)
        self.client = client

    def call(self, name: str, **arguments):
        return self.tools.invoke(name, arguments, ToolContext(self.run.step_input))

    def value(self, name: str, **arguments):
        result = self.call(name, **arguments)
        assert result.ok, result.error
        return result.value

    def error(self, name: str, **arguments) -> dict:
        result = self.call(name, **arguments)
        assert result.error is not None, result.value
        return result.error


@pytest.fixture
def session(any_redis) -> Session:
    return Session(any_redis)


# --- state --------------------------------------------------------------------------------------


def test_state_tools_write_at_once_and_read_back_as_the_agent_sees_it(session):
    assert session.value("state_get", key="plan") == {"key": "plan", "found": False, "value": None}

    assert session.value("state_set", key="plan", value={"steps": 3}) == {
        "key": "plan",
        "version": 1,
    }
    assert session.value("state_set", key="plan", value={"steps": 3})["version"] == 2  # replayed

    manager = StateManager(session.client, Keys(PREFIX))
    assert manager.get(session.sid, "plan") == {"steps": 3}  # visible to everyone, before the end
    assert session.value("state_get", key="plan") == {
        "key": "plan",
        "found": True,
        "value": {"steps": 3},
    }


def test_a_stored_null_is_found_and_told_from_an_absent_key(session):
    session.value("state_set", key="maybe", value=None)
    assert session.value("state_get", key="maybe") == {"key": "maybe", "found": True, "value": None}


def test_private_and_temporary_scopes_reach_the_state_manager(session):
    session.value("state_set", key="draft", value="mine", scope="private")
    session.value("state_set", key="hint", value="soon gone", scope="temporary", ttl_s=60)

    manager = StateManager(session.client, Keys(PREFIX))
    assert manager.get(session.sid, "draft") is None
    assert manager.get(session.sid, "draft", agent_id="researcher-001") == "mine"
    assert manager.get(session.sid, "hint") == "soon gone"
    assert session.value("state_delete", key="draft", scope="private") == {
        "key": "draft",
        "deleted": True,
    }
    assert session.value("state_delete", key="draft", scope="private")["deleted"] is False


def test_state_refusals_are_error_results_the_model_can_read(session):
    assert session.error("state_set", key="bad key", value=1)["type"] == "invalid_state_key"
    assert (
        session.error("state_set", key="k", value=1, scope="temporary")["type"] == "invalid_state"
    )
    assert session.error("state_set", key="k", value=1, scope="private", ttl_s=5)["type"] == (
        "tool_error"
    )


# --- the workspace ------------------------------------------------------------------------------


def test_workspace_files_are_written_listed_and_read_by_later_steps(session):
    assert session.value("workspace_write", path="notes/a.md", content="# héllo") == {
        "path": "notes/a.md",
        "bytes": 8,
    }
    session.value("workspace_write", path="b.txt", content="")

    assert session.value("workspace_list") == {
        "files": [{"path": "b.txt", "bytes": 0}, {"path": "notes/a.md", "bytes": 8}]
    }
    later = session.world.lifecycle.begin(session.sid, "t", "researcher-001")
    read = session.tools.invoke("file_get", {"path": "notes/a.md"}, ToolContext(later.step_input))
    assert read.value == {"path": "notes/a.md", "content": "# héllo"}
    assert session.value("workspace_read", path="notes/a.md")["content"] == "# héllo"


def test_reading_a_missing_file_says_which_files_exist(session):
    session.value("workspace_write", path="a.txt", content="x")
    error = session.error("file_get", path="b.txt")
    assert error["message"] == "no workspace file 'b.txt'; the workspace holds: a.txt"


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../other-session/x",
        "a/../../b",
        "./a",
        "a//b",
        "a/",
        "a\\b",
        "C:/x",
        "a b",
        "a\x00b",
        "é.txt",
        "x" * 257,
        "/".join(["d"] * 17),
        "",
    ],
)
def test_paths_that_could_escape_or_alias_are_refused(session, path):
    for call in (
        lambda: session.error("workspace_write", path=path, content="x"),
        lambda: session.error("workspace_read", path=path),
    ):
        assert call()["type"] == "workspace_error"
    assert session.value("workspace_list") == {"files": []}


def test_a_file_over_the_size_limit_is_refused_and_nothing_is_written(session):
    error = session.error(
        "workspace_write", path="big.txt", content="é" * (MAX_FILE_BYTES // 2 + 1)
    )

    assert error["details"] == {"path": "big.txt", "rule": "max_file_bytes", "limitBytes": 64}
    assert "MEOWSTIK_WORKSPACE_MAX_FILE_BYTES" in error["message"]
    assert (
        session.value("workspace_write", path="ok.txt", content="x" * MAX_FILE_BYTES)["bytes"] == 64
    )


def test_one_file_more_than_the_limit_is_refused_but_existing_files_can_be_replaced(session):
    for name in ("a", "b", "c"):
        session.value("workspace_write", path=name, content=name)

    error = session.error("workspace_write", path="d", content="d")
    assert error["details"] == {"path": "d", "rule": "max_files", "limitFiles": MAX_FILES}
    assert session.value("workspace_write", path="a", content="again")["bytes"] == 5
    assert session.value("workspace_read", path="a")["content"] == "again"
    assert len(session.value("workspace_list")["files"]) == MAX_FILES


def test_a_finished_session_takes_no_more_files_and_its_workspace_expires_with_it(session):
    session.value("workspace_write", path="a.txt", content="kept until retention")
    keys = Keys(PREFIX)
    assert keys.workspace(session.sid) in keys.session_owned(session.sid)

    session.world.engine.cancel(session.sid)

    assert session.error("workspace_write", path="b.txt", content="x")["type"] == "session_finished"
    assert 0 < session.client.pttl(keys.workspace(session.sid))


# --- ask_operator -------------------------------------------------------------------------------


def test_ask_operator_becomes_the_operator_input_request_and_returns_the_answer_on_the_rerun(
    session,
):
    schema = {"type": "string", "enum": ["main", "dev"]}
    with pytest.raises(InputRequired) as asked:
        session.call("ask_operator", question="Which branch?", schema=schema)
    assert (asked.value.question, asked.value.schema) == ("Which branch?", schema)

    session.world.lifecycle.await_input(session.run, asked.value)
    session.world.engine.provide_input(session.sid, "s", "dev")
    rerun = session.world.lifecycle.begin(session.sid, "s", "researcher-001")

    answered = session.tools.invoke(
        "ask_operator", {"question": "Which branch?"}, ToolContext(rerun.step_input)
    )
    assert answered.value == {"question": "Which branch?", "answer": "dev"}


def test_the_idempotent_flags_of_the_built_ins():
    flags = {item.name: item.idempotent for item in BUILTIN_TOOLS}
    assert flags == {
        "state_get": True,
        "state_set": True,
        "state_delete": True,
        "workspace_read": True,
        "file_get": True,
        "workspace_write": True,
        "workspace_list": True,
        "ask_operator": False,
    }
