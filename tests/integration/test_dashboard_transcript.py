"""A step's transcript on the session page (issue 19), in a real headless Chromium against a real
cluster: a worker runs the Looper (a 4-turn durable tool loop) against the OpenAI wire fake. The
panel opened under the running step's row shows the calls recorded so far and follows the step
without a reload until it completes; then it lists every model call and tool call in order, with
the tool names, arguments and results, the final text, the tokens (also in the steps table), the
prompt collapsed, and the markup models and tools wrote shown as text."""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from tests.integration import test_dashboard_browser as dashboard_browser
from tests.support.cluster import model_cluster, wait_for
from tests.support.openai_wire import OpenAIWire, WireCall, WireReply, WireRequest

pytestmark = pytest.mark.integration

browser = dashboard_browser.browser  # the same Chromium fixtures (skipped/required alike)
page = dashboard_browser.page

AGENTS = "looper-001"
MARKUP = "<b>x</b>"
FIRST_TEXT = "Counting <em>first</em>."
FINAL_TEXT = "Tallied twice & looked up: <i>done</i>"
ROW = '#steps tr.transcript-row[data-transcript-step="L"]'
STEP_ROW = '#steps tr[data-step="L"]'
EVERY_CALL = [
    ["c1", "model"],
    ["c1|t0", "tool"],
    ["c2", "model"],
    ["c2|t0", "tool"],
    ["c3", "model"],
    ["c3|t0", "tool"],
    ["c3|t1", "tool"],
    ["c4", "model"],
]


def turns(gate: str) -> list[list[tuple[str, dict]]]:
    """The Looper's tool calls, turn by turn: the second blocks until the test opens its gate,
    the third asks for two at once, one of them a tool that does not exist (an error result)."""
    return [
        [("tally", {"counter": f"{MARKUP} {gate}"})],
        [("gated_lookup", {"gate": gate})],
        [("tally", {"counter": f"{gate}-again"}), ("ghost_tool", {})],
    ]


def respond(request: WireRequest) -> WireReply:
    messages = request.body["messages"]
    if messages[0]["content"] != "You are the Looper.":
        return WireReply(content=json.dumps({"output": "ok"}))
    script = turns(json.loads(messages[1]["content"])["gate"])
    turn = len([m for m in messages if m["role"] == "assistant"])
    if turn < len(script):
        return WireReply(
            content=FIRST_TEXT if turn == 0 else None,
            tool_calls=[
                WireCall(f"call_{turn}_{i}", name, json.dumps(arguments))
                for i, (name, arguments) in enumerate(script[turn])
            ],
        )
    return WireReply(content=FINAL_TEXT)


@pytest.fixture(scope="module")
def looper_cluster(redis_server, tmp_path_factory):
    """A worker running the Looper with the OpenAI wire fake as its model, and the API."""
    with OpenAIWire(responder=respond) as wire:
        logs = tmp_path_factory.mktemp("transcript-cluster-logs")
        with model_cluster(redis_server.url, logs, wire.url, AGENTS) as running:
            yield running


def loop_plan(gate: str) -> dict:
    step = {"id": "L", "title": "Loop", "requiredCapabilities": ["tool_loop"]}
    return {"steps": [{**step, "parameters": {"gate": gate}}]}


def wait_for_calls(page, expected: list[list[str]]) -> None:
    """Wait until the open transcript lists exactly ``expected`` ([call, kind], in order)."""
    page.wait_for_function(
        "([selector, expected]) => JSON.stringify([...document.querySelectorAll("
        "  selector + ' li.call')].map((li) => [li.dataset.call, li.dataset.kind]))"
        " === JSON.stringify(expected)",
        arg=[ROW, expected],
    )


def texts(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "found => found.map((e) => e.textContent)")


def test_a_steps_transcript_follows_it_while_running_and_shows_every_call_after(
    looper_cluster, page
):
    # Given the Looper's step L, blocked in its second tool call (c2|t0)
    gate = uuid.uuid4().hex
    sid = looper_cluster.submit({"goal": "transcript", "plan": loop_plan(gate)})["sessionId"]
    client = redis.Redis.from_url(looper_cluster.redis_url)
    try:
        wait_for(lambda: client.lindex(f"test:pids:{gate}", 0), 30, what="the gated tool")
        # When its page is open and the step's transcript is opened while it runs
        page.goto(f"{looper_cluster.api_url}/sessions/{sid}")
        page.wait_for_selector('g.node.state-running[data-step="L"]')
        page.evaluate("window.__samePage = true")  # gone if the page reloads
        assert page.text_content(f'{STEP_ROW} [data-field="tokens"]') == ""  # not counted yet
        page.click(f"{ROW} details.transcript > summary")
        # Then it shows the calls recorded so far: the first turn and the second's request
        wait_for_calls(page, EVERY_CALL[:3])
        asked = page.text_content(f'{ROW} li[data-call="c2"] ul.asked')
        assert "gated_lookup" in asked and gate in asked
        assert "updating while the step runs" in page.text_content(f"{ROW} .transcript-note")
        dashboard_browser.shoot(page, "session-transcript-running")
    finally:
        client.lpush(f"test:gate:{gate}", "open")

    # When the step completes, the open panel follows without a reload to the whole transcript
    page.wait_for_function("() => document.getElementById('status').textContent === 'completed'")
    wait_for_calls(page, EVERY_CALL)
    assert page.evaluate("window.__samePage") is True
    assert page.evaluate(f"() => document.querySelector('{ROW} details.transcript').open") is True
    check_the_whole_transcript(page, gate)
    # and the steps table shows the step's tokens: 4 model calls of 43 tokens each
    page.wait_for_function(
        "(selector) => document.querySelector(selector)?.textContent === '172'",
        arg=f'{STEP_ROW} [data-field="total-tokens"]',
    )
    assert page.text_content(f'{STEP_ROW} [data-field="model-calls"]') == "4 model calls"

    # And after completion, the page drawn again offers the same transcript
    page.reload()
    assert page.text_content(f'{STEP_ROW} [data-field="total-tokens"]') == "172"
    page.click(f"{ROW} details.transcript > summary")
    wait_for_calls(page, EVERY_CALL)
    check_the_whole_transcript(page, gate)
    assert page.text_content(f"{ROW} .transcript-note") == "8 calls · 172 tokens"
    page.click(f'{ROW} li[data-call="c1"] details.prompt > summary')
    page.wait_for_selector(f'{ROW} li[data-call="c1"] details.prompt[open] .message-text')
    page.locator(ROW).scroll_into_view_if_needed()
    dashboard_browser.shoot(page, "session-transcript")


def check_the_whole_transcript(page, gate: str) -> None:
    body = f"{ROW} .transcript-body"
    assert page.get_attribute(f"{body} section.transcript-agent", "data-agent") == "looper-001"
    assert page.text_content(f"{body} .agent-facts") == (
        "4 model calls · 4 tool calls · 172 tokens (124 prompt + 48 completion)"
    )
    # the tools, by name, in the order they ran; all but the one that does not exist succeeded
    assert texts(page, f"{body} li.call-tool .call-name") == [
        "tally",
        "gated_lookup",
        "tally",
        "ghost_tool",
    ]
    assert texts(page, f"{body} li.call-tool .call-ok") == ["ok", "ok", "ok", "error"]
    assert page.locator(f"{body} li.call-tool.succeeded").count() == 3
    failed = f'{body} li.call-tool.failed[data-call="c3|t1"]'
    assert json.loads(page.text_content(f"{failed} pre.result"))["error"]["type"] == "unknown_tool"
    assert texts(page, f'{body} li[data-call="c3"] ul.asked .tool-name') == ["tally", "ghost_tool"]
    # the model calls: the model, tokens and what each asked for; the first's text and prompt
    assert texts(page, f"{body} li.call-model .call-name") == ["wire-model"] * 4
    first = f'{body} li[data-call="c1"]'
    assert "43 tokens (31 prompt + 12 completion)" in page.text_content(f"{first} .call-meta")
    assert "finish: tool_calls" in page.text_content(f"{first} .call-meta")
    assert page.text_content(f"{first} pre.content") == FIRST_TEXT
    assert page.text_content(f"{first} ul.asked .tool-name") == "tally"
    assert json.loads(page.text_content(f"{first} ul.asked pre.arguments")) == {
        "counter": f"{MARKUP} {gate}"
    }
    prompt = page.locator(f"{first} details.prompt")
    assert prompt.evaluate("d => d.open") is False  # collapsed
    assert texts(page, f"{first} details.prompt .message-text") == [
        "You are the Looper.",
        json.dumps({"gate": gate}),
    ]
    assert page.locator(f'{body} li[data-call="c2"] details.prompt').count() == 0
    # a tool call: its arguments and its result as indented JSON, markup shown as text
    tool = f'{body} li[data-call="c1|t0"]'
    assert json.loads(page.text_content(f"{tool} pre.arguments")) == {"counter": f"{MARKUP} {gate}"}
    result = page.text_content(f"{tool} pre.result")
    assert json.loads(result) == {"counter": f"{MARKUP} {gate}", "runs": 1}
    assert f'"counter": "{MARKUP} {gate}"' in result
    assert json.loads(page.text_content(f'{body} li[data-call="c2|t0"] pre.result'))["gate"] == gate
    # the final answer
    last = f'{body} li[data-call="c4"]'
    assert page.text_content(f"{last} pre.content") == FINAL_TEXT
    assert "finish: stop" in page.text_content(f"{last} .call-meta")
    # no markup from the model or the tools became elements
    assert page.locator(f"{body} b, {body} i, {body} em").count() == 0
    assert MARKUP in page.inner_text(body)


HOSTILE = '<img src=x onerror="window.__pwned=1;alert(1)"><script>window.__pwned=2</script>'
CRAFTED_CALLS = [
    {
        "call": "c1",
        "kind": "model",
        "at": "2026-01-01T00:00:00.000Z",
        "durationMs": 1500.0,
        "endpoint": f"edge {HOSTILE}",
        "model": f"model {HOSTILE}",
        "finishReason": "tool_calls",
        "content": f"text {HOSTILE}",
        "toolCalls": [{"id": "x", "name": f"tool {HOSTILE}", "arguments": f"not json {HOSTILE}"}],
        "usage": None,
        "prompt": [{"role": f"role {HOSTILE}", "content": [{"type": "text", "text": HOSTILE}]}],
    },
    {"call": "c1|t0", "kind": "pending", "state": "running", "at": "2026-01-01T00:00:01Z"},
    {"call": "c1|t1", "kind": "pending", "state": "waiting_for_operator", "at": None},
]


def test_pending_calls_and_markup_in_every_field_show_as_text(looper_cluster, page):
    """The panel draws whatever the transcript holds as text, pending calls included (a crafted
    transcript in place of the API's answer), and says so when it cannot read one."""
    gate = uuid.uuid4().hex
    client = redis.Redis.from_url(looper_cluster.redis_url)
    client.lpush(f"test:gate:{gate}", "open")  # the gated tool passes at once
    sid = looper_cluster.submit({"goal": "crafted", "plan": loop_plan(gate)})["sessionId"]
    assert looper_cluster.wait_session(sid)["status"] == "completed"
    crafted = {
        "sessionId": sid,
        "stepId": "L",
        "agents": [{"agentId": f"agent {HOSTILE}", "usage": None, "calls": CRAFTED_CALLS}],
    }
    answers = [(503, {"error": {"code": "store_unavailable", "message": f"down {HOSTILE}"}})]

    def fulfil(route) -> None:
        status, body = answers.pop(0) if answers else (200, crafted)
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.route("**/steps/L/transcript", fulfil)
    page.goto(f"{looper_cluster.api_url}/sessions/{sid}")
    summary = f"{ROW} details.transcript > summary"
    body = f"{ROW} .transcript-body"
    # a transcript that cannot be read says why; opened again, the panel reads it again
    page.click(summary)
    page.wait_for_selector(f'{body}[data-state="error"] .problem')
    assert page.text_content(f"{body} .problem") == f"Could not read the transcript: down {HOSTILE}"
    page.click(summary)
    page.click(summary)
    wait_for_calls(page, [["c1", "model"], ["c1|t0", "pending"], ["c1|t1", "pending"]])
    assert texts(page, f"{body} .pending-state") == [
        "running: began, no result yet",
        "waiting for an operator: began in an earlier run without a result",
    ]
    model = f'{body} li[data-call="c1"]'
    assert page.text_content(f"{model} .call-name") == f"model {HOSTILE}"
    assert "tokens not counted" in page.text_content(f"{model} .call-meta")
    assert f"endpoint edge {HOSTILE}" in page.text_content(f"{model} .call-meta")
    assert "1.5 s" in page.text_content(f"{model} .call-meta")
    assert page.text_content(f"{model} pre.content") == f"text {HOSTILE}"
    assert page.text_content(f"{model} ul.asked .tool-name") == f"tool {HOSTILE}"
    assert page.text_content(f"{model} ul.asked pre.arguments") == f"not json {HOSTILE}"
    assert page.text_content(f"{model} details.prompt .role") == f"role {HOSTILE}"
    assert json.loads(page.text_content(f"{model} details.prompt .message-text")) == [
        {"type": "text", "text": HOSTILE}
    ]
    assert page.text_content(f"{body} .transcript-agent .agent-id") == f"agent {HOSTILE}"
    # nothing was parsed as markup, nothing ran
    assert page.locator(f"{ROW} img, {ROW} script").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    assert dialogs == []
