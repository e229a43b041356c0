"""One key source for Python and Lua: no .lua file spells a key, the prelude's key functions are
rendered from Keys and name exactly what Keys names (run through real Lua, on fakeredis and a
redis-server), every script with the prelude takes the prefix as ARGV[1], and Keys recognises
its own keys."""

import re
from importlib import resources

import pytest

from orchestrator.core.ids import agent_queue
from orchestrator.store.keys import FAMILIES, SESSION_KEY_FAMILIES, Keys, spell
from orchestrator.store.prelude import LUA_KEY_FAMILIES, lua_string, prelude, render_keys
from orchestrator.store.scripts import PRELUDE_MARKER

LUA_DIR = resources.files("orchestrator.store").joinpath("lua")
LUA_FILES = sorted(path.name for path in LUA_DIR.iterdir() if path.name.endswith(".lua"))
# the done-when check of issue 17, as a grep would run it over the .lua files
FAMILY_GREP = re.compile(
    r'":?(session|agent|waiting|deadlines|input-deadlines|sessions|metrics|capability|logs|'
    r'executor|worker|workers|ratelimit)[:"{]'
)
SAMPLE_IDS = ("s-1", "researcher-001", "web_research", "a.b:c", "x y", "ü{}")
PREFIXES = ("t", "meowstik", "app:blue")


def lua_string_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal of Lua source, comments skipped."""
    found, index, line = [], 0, 1
    while index < len(source):
        char = source[index]
        long_open = re.match(r"(--)?\[(=*)\[", source[index:])
        if long_open:  # [[long string]] or --[[long comment]]
            close = "]" + long_open.group(2) + "]"
            end = source.index(close, index)
            if not long_open.group(1):
                found.append((line, source[index + len(long_open.group(0)) : end]))
            line += source.count("\n", index, end)
            index = end + len(close)
        elif source.startswith("--", index):
            newline = source.find("\n", index)
            index = len(source) if newline < 0 else newline
        elif char in "\"'":
            end = index + 1
            while source[end] != char:
                end += 2 if source[end] == "\\" else 1
            found.append((line, source[index + 1 : end]))
            index = end + 1
        else:
            line += char == "\n"
            index += 1
    return found


def family_words() -> set[str]:
    """The words of every family's literal text: session, steps, agent, slots, deadlines, ..."""
    words = set()
    for family in FAMILIES:
        for piece in family.template()[::2]:
            words.update(w for w in re.split(r"[:{}]", piece) if w)
    return words


def spells_a_key(literal: str, words: set[str]) -> bool:
    """A literal that is, or holds, a piece of a key name: a family word next to a separator
    (':', '{', '}'), or separators alone (a key glued together around them)."""
    if literal and not literal.strip(":{}"):
        return ":" in literal
    return any(
        re.search(rf"[:{{}}]{re.escape(w)}\b|\b{re.escape(w)}[:{{}}]", literal) for w in words
    )


def test_the_key_word_check_catches_what_the_scripts_used_to_spell():
    words = family_words()
    for drifted in (
        ":session:{",
        "}:steps",
        ":agent:",
        ":slots",
        ":deadlines",
        ":input-deadlines",
        ":sessions:status:",
        ":metrics:steps",
        ":capability:",
        ":waiting:",
        ":",
        "}:private:",
        ":private-agents",
        ":subplans",
    ):
        assert spells_a_key(drifted, words), drifted
    for harmless in ("status", "agentId", "|", "{}", "|le=", "waiting_for_input", "(", "[]"):
        assert not spells_a_key(harmless, words), harmless


@pytest.mark.parametrize("name", LUA_FILES)
def test_no_lua_file_spells_a_key_name(name):
    source = LUA_DIR.joinpath(name).read_text()
    assert not FAMILY_GREP.findall(source), "key names come from the prelude or KEYS"
    words = family_words()
    spelled = [
        (line, text) for line, text in lua_string_literals(source) if spells_a_key(text, words)
    ]
    assert not spelled, (
        f"{name} spells key names {spelled}: take them as KEYS built by Keys, or call a key "
        "function of the prelude (orchestrator/store/prelude.py LUA_KEY_FAMILIES)"
    )


def test_the_literal_reader_sees_strings_and_skips_comments():
    source = '-- ":agent:" in a comment\nlocal a = "x:" .. \'y\' -- "z"\nlocal b = [[long]]\n'
    assert lua_string_literals(source) == [(2, "x:"), (2, "y"), (3, "long")]


@pytest.mark.parametrize("name", [n for n in LUA_FILES if not n.startswith("_")])
def test_every_script_documents_keys_and_argv_and_with_the_prelude_takes_the_prefix_first(name):
    source = LUA_DIR.joinpath(name).read_text()
    header = "\n".join(line for line in source.splitlines() if line.startswith("--"))
    assert "KEYS[1]" in header and "ARGV[1]" in header
    if PRELUDE_MARKER in header:
        assert re.search(r"ARGV\[1\] key prefix\b", header), "the prefix is ARGV[1]"
    else:
        assert "key prefix" not in header, "a script without the prelude is given its keys"


def test_the_prelude_file_part_spells_no_key_and_the_rendered_part_is_generated():
    assert prelude().startswith(render_keys())
    assert "local PREFIX = ARGV[1]" in render_keys()
    for name in LUA_KEY_FAMILIES:
        assert f"local function {name}_key(" in render_keys()


SNIPPET = """
local functions = {%s, session_owned_keys = session_owned_keys,
  default_agent_queue = default_agent_queue}
local args = {}
for i = 3, #ARGV do args[i - 2] = ARGV[i] end
return functions[ARGV[2]](unpack(args))
"""


@pytest.fixture
def call_lua(any_redis):
    entries = ", ".join(f"{name}_key = {name}_key" for name in LUA_KEY_FAMILIES)
    script = any_redis.register_script(prelude() + SNIPPET % entries)

    def call(prefix: str, function: str, *ids: str):
        reply = script(args=[prefix, function, *ids])
        if isinstance(reply, list):
            return [item.decode() for item in reply]
        return reply.decode()

    return call


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_rendered_key_functions_name_exactly_what_keys_names(call_lua, prefix):
    keys = Keys(prefix)
    by_name = {family.name: family for family in FAMILIES}
    for name in LUA_KEY_FAMILIES:
        family = by_name[name]
        for offset in range(len(SAMPLE_IDS)):
            ids = [SAMPLE_IDS[(offset + i) % len(SAMPLE_IDS)] for i in range(len(family.params))]
            assert call_lua(prefix, f"{name}_key", *ids) == family.key(keys, *ids), name
    for session_id in SAMPLE_IDS:
        assert call_lua(prefix, "session_owned_keys", session_id) == list(
            keys.session_owned(session_id)
        )
    assert call_lua(prefix, "default_agent_queue", "researcher-001") == agent_queue(
        "researcher-001"
    )


def test_lua_string_literals_say_what_python_says(any_redis):
    for text in ("plain", 'quote " and \\ backslash', "tab\tnewline\n", "ü:{}", ""):
        assert any_redis.eval(f"return {lua_string(text)}", 0).decode() == text


def test_spell_refuses_a_builder_that_drops_or_repeats_an_id():
    assert spell(lambda a, b: f"{a}-{b}", ("a", "b")) == ("", "a", "-", "b", "")
    with pytest.raises(ValueError):
        spell(lambda a, b: f"{a}", ("a", "b"))
    with pytest.raises(ValueError):
        spell(lambda a: f"{a}{a}", ("a",))


def test_a_session_owns_one_key_of_every_family_that_takes_only_its_id_subplans_included():
    keys = Keys("t")
    owned = keys.session_owned("s1")
    assert keys.subplans("s1") in owned and keys.session_logs("s1") in owned
    assert keys.private_state_index("s1") in owned and keys.temporary_state_index("s1") in owned
    assert {family.name for family in SESSION_KEY_FAMILIES} == {
        family.name for family in FAMILIES if family.params == ("session_id",)
    }
    assert len(set(owned)) == len(owned) == len(SESSION_KEY_FAMILIES)
    # the families with a second id are reached through an owned index, or expire by themselves
    with_member = {family.name for family in FAMILIES if family.session_owned} - {
        family.name for family in SESSION_KEY_FAMILIES
    }
    assert with_member == {"private_state", "temporary_state", "lock"}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_keys_recognises_every_key_it_makes_and_nothing_else(prefix):
    keys = Keys(prefix)
    for family in FAMILIES:
        for offset in range(len(SAMPLE_IDS)):
            ids = [SAMPLE_IDS[(offset + i) % len(SAMPLE_IDS)] for i in range(len(family.params))]
            key = family.key(keys, *ids)
            assert keys.family_of(key) == family.name, key
    assert keys.family_of(f"{prefix}:agent:a:slots") == "agent_slots"
    assert keys.family_of(f"{prefix}:session:{{s}}:steps") == "steps"
    for foreign in (f"{prefix}:nope", "other:agent:a", f"{prefix}:session:s:steps", "", prefix):
        assert keys.family_of(foreign) is None, foreign
