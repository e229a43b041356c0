"""The prelude of the lifecycle scripts: Lua functions for key names, rendered from ``Keys``,
then the shared functions of lua/_slots.lua and lua/_logs.lua (which spell no key).

A script gets the keys it knows in advance as KEYS, built in Python by ``Keys``. The keys it
finds while it runs (the agent a step was routed to, a capability's waiting list, another
session's steps when a freed slot is handed over) come from the rendered functions below, all
under ``PREFIX``: every script that has the prelude takes the key prefix as ARGV[1].

Each function is one ``Keys`` method turned into a Lua concatenation by calling it with markers
for its ids (``KeyFamily.template``), so Lua and Python cannot spell a key differently:

    local function agent_slots_key(agent_id) return PREFIX .. ":agent:" .. agent_id .. ":slots" end

``session_owned_keys(session_id)`` returns the list ``Keys.session_owned`` returns (what
retention expires), ``default_agent_queue`` is ``orchestrator.core.ids.agent_queue``, and
``WAITING_FOR_CAPACITY`` / ``WAITING_FOR_AGENT`` are the step record's ``waitingFor`` values
(``orchestrator.core.availability``). The rendered text exists only in memory;
``python -m orchestrator.store.prelude`` prints it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from orchestrator.core.availability import WAITING_FOR_AGENT, WAITING_FOR_CAPACITY
from orchestrator.core.ids import agent_queue
from orchestrator.store.keys import FAMILIES, PREFIX_PARAMETER, SESSION_KEY_FAMILIES, spell

LUA_KEY_FAMILIES = (
    "session",
    "steps",
    "agent",
    "agent_slots",
    "agent_metrics",
    "agent_metrics_window",
    "waiting",
    "capability_agents",
    "deadlines",
    "schedule_deadlines",
    "input_deadlines",
    "sessions_by_status",
    "step_counts",
    "step_durations",
    "metrics_pending",
    "private_state",
    "private_state_index",
    "temporary_state",
    "temporary_state_index",
    "state_meta",
    "costs",
    "cost_totals",
    "cost_hour",
    "webhook_outbox",
    "session_logs",
    "global_logs",
)
"""The families the scripts name at run time; each is rendered as ``<family>_key(<ids>)``."""

PRELUDE_PREFIX = "PREFIX"
"""The Lua name of the key prefix, ARGV[1] of every script that has the prelude."""


def lua_string(text: str) -> str:
    """``text`` as a double-quoted Lua string literal (bytes outside printable ASCII escaped)."""
    out = []
    for char in text:
        if char in '\\"':
            out.append("\\" + char)
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.extend(f"\\{byte:03d}" for byte in char.encode())
    return '"' + "".join(out) + '"'


def lua_concat(pieces: tuple[str, ...]) -> str:
    """A Lua expression for pieces from ``spell``: literals quoted, parameters by name (the key
    prefix as ``PREFIX``), joined with ``..``."""
    parts = []
    for index, piece in enumerate(pieces):
        if index % 2:
            parts.append(PRELUDE_PREFIX if piece == PREFIX_PARAMETER else piece)
        elif piece:
            parts.append(lua_string(piece))
    return " .. ".join(parts) or '""'


def lua_function(name: str, params: tuple[str, ...], body: str) -> str:
    return f"local function {name}({', '.join(params)}) return {body} end"


@cache
def render_keys() -> str:
    """The generated part of the prelude: PREFIX and the key-name functions."""
    by_name = {family.name: family for family in FAMILIES}
    lines = [
        "-- Generated from orchestrator.store.keys.Keys by orchestrator/store/prelude.py.",
        f"local {PRELUDE_PREFIX} = ARGV[1]",
    ]
    for name in LUA_KEY_FAMILIES:
        family = by_name[name]
        lines.append(lua_function(f"{name}_key", family.params, lua_concat(family.template())))
    owned = "".join(f"\n  {lua_concat(f.template())}," for f in SESSION_KEY_FAMILIES)
    lines.append(lua_function("session_owned_keys", ("session_id",), "{" + owned + "\n}"))
    queue = spell(agent_queue, ("agent_id",))
    lines.append(lua_function("default_agent_queue", ("agent_id",), lua_concat(queue)))
    lines.append(f"local WAITING_FOR_CAPACITY = {lua_string(WAITING_FOR_CAPACITY)}")
    lines.append(f"local WAITING_FOR_AGENT = {lua_string(WAITING_FOR_AGENT)}")
    return "\n".join(lines) + "\n"


@cache
def prelude() -> str:
    """The whole prelude: the rendered key functions, then lua/_slots.lua and lua/_logs.lua."""
    lua = resources.files("orchestrator.store").joinpath("lua")
    shared = [lua.joinpath(name).read_text() for name in ("_slots.lua", "_logs.lua")]
    return "\n".join([render_keys(), *shared])


if __name__ == "__main__":
    print(prelude())
