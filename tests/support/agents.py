"""Agents for the integration tests, loaded by real workers via MEOWSTIK_AGENT_MODULES.

They report what they received so tests can check context propagation, and the gate agent
blocks on a Redis list until the test opens the gate: slowness without sleeps.
"""

from __future__ import annotations

import json
import os
import time

import redis
from celery.exceptions import SoftTimeLimitExceeded

from orchestrator.core.errors import PermanentStepError, RetryableStepError
from orchestrator.core.models import Capability
from orchestrator.core.steps import InputRequired, StepInput, StepResult
from orchestrator.settings import Settings
from workers.agents.base import agent

GATE_TIMEOUT_S = 60


def _client() -> redis.Redis:
    # reads may block on BLPOP for GATE_TIMEOUT_S: the socket must wait longer than that
    return redis.Redis.from_url(Settings().effective_redis_url, socket_timeout=GATE_TIMEOUT_S + 10)


def _report(step_input: StepInput, **extra) -> dict:
    return {
        "stepId": step_input.step_id,
        "agentId": step_input.agent_id,
        "attempt": step_input.attempt,
        "pid": os.getpid(),
        "dependencies": step_input.dependencies,
        "initialContext": step_input.initial_context,
        "sharedState": step_input.shared_state,
        **extra,
    }


@agent(id="echo-001", name="Echo", type="tester", capabilities=["echo_work"], max_load=4)
def echo(step_input: StepInput) -> StepResult:
    """Returns what it was given; publishes its step id into shared state."""
    return StepResult(_report(step_input), {f"seen_{step_input.step_id}": True})


@agent(id="gate-001", name="Gate", type="tester", capabilities=["gated_work"], max_load=4)
def gate(step_input: StepInput) -> dict:
    """Waits until the test pushes to the gate list named in parameters['gate']."""
    name = step_input.step.parameters["gate"]
    client = _client()
    client.incr(f"test:runs:{name}")
    client.rpush(f"test:pids:{name}", os.getpid())
    opened = client.blpop([f"test:gate:{name}"], timeout=GATE_TIMEOUT_S)
    if opened is None:
        raise PermanentStepError(f"gate {name} was never opened")
    return _report(step_input, gate=name, openedAt=time.time())


@agent(id="flaky-001", name="Flaky", type="tester", capabilities=["flaky_work"], max_load=2)
def flaky(step_input: StepInput) -> dict:
    """Fails with a retryable error until attempt parameters['succeedOn']."""
    if step_input.attempt < int(step_input.step.parameters.get("succeedOn", 2)):
        raise RetryableStepError(f"transient failure on attempt {step_input.attempt}")
    return _report(step_input)


@agent(id="broken-001", name="Broken", type="tester", capabilities=["broken_work"], max_load=2)
def broken(step_input: StepInput) -> dict:
    """Always fails permanently."""
    raise PermanentStepError("this agent always fails")


def _sleep(step_input: StepInput) -> dict:
    """Hangs on its first attempt: waits on the gate in parameters['gate'], which the test opens
    only at its end, past the step's timeout; counts the soft time limits that interrupted it
    (``test:soft:<gate>``) and re-raises. Later attempts answer at once."""
    name = step_input.step.parameters["gate"]
    client = _client()
    client.rpush(f"test:pids:{name}", os.getpid())
    if step_input.attempt == 1:
        try:
            client.blpop([f"test:gate:{name}"], timeout=GATE_TIMEOUT_S)
        except SoftTimeLimitExceeded:
            client.incr(f"test:soft:{name}")
            raise
    return _report(step_input, gate=name)


sleeper = agent(id="sleeper-001", name="Sleeper", type="tester", capabilities=["sleepy_work"])(
    _sleep
)
# the same work for a worker with a threads pool, where no soft limit reaches the agent
sleeper_threaded = agent(
    id="sleeper-002", name="Sleeper (threads)", type="tester", capabilities=["sleepy_threads"]
)(_sleep)


@agent(
    id="stubborn-001",
    name="Stubborn",
    type="tester",
    capabilities=["stubborn_work"],
    timeout_s=1,
)
def stubborn(step_input: StepInput) -> dict:
    """Ignores its soft time limit on its first attempt (catches it and waits on, as careless
    code does), so only the hard limit stops it; its timeout is its own timeoutS (1 s). Counts
    the soft limits it swallowed (``test:soft:<gate>``); later attempts answer at once."""
    name = step_input.step.parameters["gate"]
    client = _client()
    client.rpush(f"test:pids:{name}", os.getpid())
    while step_input.attempt == 1:
        try:
            if client.blpop([f"test:gate:{name}"], timeout=GATE_TIMEOUT_S) is not None:
                break
        except SoftTimeLimitExceeded:
            client.incr(f"test:soft:{name}")
    return _report(step_input, gate=name)


@agent(id="pair-001", name="Pair", type="tester", capabilities=["pair_work"], max_load=2)
def pair(step_input: StepInput) -> dict:
    """Records its own start and end around a short piece of simulated work."""
    started = time.time()
    time.sleep(float(step_input.step.parameters.get("workS", 0.05)))  # the work itself
    return _report(step_input, startedAt=started, endedAt=time.time())


@agent(id="victim-001", name="Victim", type="tester", capabilities=["victim_work"], max_load=2)
def victim(step_input: StepInput) -> dict:
    """Holds its step until the gate opens (its worker is killed meanwhile)."""
    return gate.run(step_input)


@agent(id="solo-001", name="Solo", type="tester", capabilities=["solo_work"], max_load=1)
def solo(step_input: StepInput) -> dict:
    """One at a time; gated when parameters name a gate."""
    if "gate" in step_input.step.parameters:
        return gate.run(step_input)
    return _report(step_input)


@agent(
    id="primary-001",
    name="Primary",
    type="tester",
    capabilities=["fallback_work"],
    priority=10,
    max_load=2,
)
def primary(step_input: StepInput) -> dict:
    """Preferred by priority, and always fails."""
    raise PermanentStepError("primary agent is broken")


@agent(
    id="secondary-001",
    name="Secondary",
    type="tester",
    capabilities=["fallback_work"],
    priority=1,
    max_load=2,
)
def secondary(step_input: StepInput) -> dict:
    """The fallback: same capability, lower priority."""
    return _report(step_input)


@agent(id="asker-001", name="Asker", type="tester", capabilities=["ask_work"], max_load=1)
def asker(step_input: StepInput) -> dict:
    """Asks an operator (question, schema, timeoutS, default from parameters) unless noAsk."""
    params = step_input.step.parameters
    if params.get("noAsk"):
        return _report(step_input)
    if not step_input.input_provided:
        extra = {"default": params["default"]} if "default" in params else {}
        raise InputRequired(
            params.get("question", "Proceed?"),
            schema=params.get("schema"),
            timeout_s=params.get("timeoutS"),
            **extra,
        )
    return _report(step_input, answer=step_input.operator_input)


@agent(
    id="decomposer-001",
    name="Decomposer",
    type="tester",
    capabilities=["decompose_work"],
    max_load=4,
)
def decomposer(step_input: StepInput) -> StepResult | dict:
    """Returns parameters['subplan'] as subtasks on its first run (on every run with 'repeat'),
    then reports its subtasks' outputs."""
    params = step_input.step.parameters
    if params.get("subplan") and (params.get("repeat") or step_input.decompositions == 0):
        return StepResult(subtasks=params["subplan"])
    return _report(
        step_input,
        subtaskOutputs=step_input.subtask_outputs,
        decompositions=step_input.decompositions,
    )


def _state_work(step_input: StepInput) -> dict:
    """What the state tests ask for in parameters['mode'] (see tests/integration/
    test_agent_state.py); reports what the agent saw."""
    from orchestrator.core.errors import StateConflictError

    state = step_input.state
    assert state is not None
    params = step_input.step.parameters
    mode = params["mode"]
    if mode == "lock_counter":
        for _ in range(int(params["times"])):
            with state.lock("counter", ttl_s=10, wait_s=30):
                state.set("counter", state.get("counter", 0) + 1)
        return _report(step_input)
    if mode == "tx_counter":
        conflicts = 0
        for _ in range(int(params["times"])):
            while True:
                try:
                    with state.transaction() as tx:
                        tx.set("txCounter", tx.get("txCounter", 0) + 1)
                    break
                except StateConflictError:
                    conflicts += 1
        return _report(step_input, conflicts=conflicts)
    if mode == "write_shared":
        version = state.set(params["key"], params["value"])
        return _report(step_input, version=version)
    if mode == "write_temporary":
        version = state.set(params["key"], params["value"], type="temporary", ttl_s=params["ttlS"])
        return _report(step_input, version=version)
    if mode == "write_private":
        state.private.set(params["key"], params["value"])
        return _report(step_input)
    if mode == "write_then_fail":
        state.set(params["key"], params["value"])
        raise PermanentStepError("failing after a state write, on purpose")
    return _report(
        step_input,
        seen={key: state.get(key) for key in params.get("keys", [])},
        visible=state.entries(),
        private=state.private.entries(),
    )


@agent(id="stateful-001", name="Stateful A", type="tester", capabilities=["state_work"],
       max_load=4)  # fmt: skip
def stateful_a(step_input: StepInput) -> dict:
    return _state_work(step_input)


@agent(id="stateful-002", name="Stateful B", type="tester", capabilities=["state_work_b"],
       max_load=4)  # fmt: skip
def stateful_b(step_input: StepInput) -> dict:
    return _state_work(step_input)


@agent(
    id="looper-001",
    name="Looper",
    type="tester",
    capabilities=[Capability(name="tool_loop", tools=["tally", "gated_lookup"])],
    max_load=2,
)
def looper(step_input: StepInput) -> dict:
    """Chats with the model through ``step_input.llm`` with two tools (a durable tool loop)."""
    if step_input.llm is None:
        raise PermanentStepError("looper needs a model (MEOWSTIK_LLM_BASE_URL)")
    prompt = [
        {"role": "system", "content": "You are the Looper."},
        {"role": "user", "content": json.dumps(step_input.step.parameters)},
    ]
    outcome = step_input.llm.chat(prompt, tools=["tally", "gated_lookup"])
    return {"answer": outcome.content, "calls": outcome.calls, "replayed": outcome.replayed}


@agent(
    id="chatter-001",
    name="Chatter",
    type="tester",
    capabilities=["chat"],
    max_load=10,
)
def chatter(step_input: StepInput) -> dict:
    """Asks the model ``parameters.calls`` questions in turn (no tools): a step whose budget
    pause can fall between two of its calls."""
    if step_input.llm is None:
        raise PermanentStepError("chatter needs a model (MEOWSTIK_LLM_BASE_URL)")
    answers, replayed = [], 0
    for turn in range(int(step_input.step.parameters.get("calls", 1))):
        prompt = [
            {"role": "system", "content": "You are the Chatter."},
            {"role": "user", "content": json.dumps({**step_input.step.parameters, "turn": turn})},
        ]
        outcome = step_input.llm.chat(prompt)
        answers.append(outcome.content)
        replayed += outcome.replayed
    return {"answers": answers, "replayed": replayed}


@agent(id="counted-001", name="Counted", type="tester", capabilities=["counted_work"], max_load=4)
def counted(step_input: StepInput) -> dict:
    """Counts its calls in test:calls:<parameters.key> and, with ``failFirst``, fails its first
    call for good (a session that fails once by design, to be retried)."""
    calls = _client().incr(f"test:calls:{step_input.step.parameters['key']}")
    if step_input.step.parameters.get("failFirst") and calls == 1:
        raise PermanentStepError("the first call fails by design")
    return _report(step_input, calls=calls)
