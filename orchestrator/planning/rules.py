"""The rule-based planner: turn a goal into a TaskPlan for the default fleet, without an LLM.

Pure: no I/O. A goal is read in three parts: the *lead*, the verbs it opens with ("Research and
implement", "Please fix"), which say what kind of work it is; the *frame*, the words describing
the work (only the head when the goal reads "<framing> about <topic>", so a blog post about
"building APIs" stays a writing plan); and the *subject*, used in titles and descriptions.

The first rule in ``RULES`` whose keyword families match picks a template in ``TEMPLATES``.
Both are data, so a new kind of goal is new rows, not new branches. Every capability used is in
``orchestrator.core.fleet``, and every plan passes ``PlanGraph.build`` before it is returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.core.errors import PlanError
from orchestrator.core.graph import PlanGraph
from orchestrator.core.models import PlanStep, TaskPlan
from orchestrator.planning.step_tables import TEMPLATES, StepTemplate

MAX_GOAL_CHARS = 4000  # TaskPlan.goal's limit
MAX_TITLE_CHARS = 200  # PlanStep.title's limit
TITLE_SUBJECT_CHARS = 120
DESCRIPTION_SUBJECT_CHARS = 400
MAX_COMPARED_ITEMS = 4
MAX_COMPARED_ITEM_CHARS = 80
MAX_CONTEXT_KEYS_NAMED = 10

# Keyword families. Each pattern must match a whole word (casefolded), inflections included.
KEYWORD_PATTERNS: dict[str, str] = {
    "research": r"research\w*|investigat\w*|explor(?:e|es|ed|ing)|stud(?:y|ies|ied|ying)"
    r"|analy[sz](?:e|es|ed|ing|is)|assess(?:es|ed|ing)?|evaluat(?:e|es|ed|ing)",
    "compare": r"compar\w*|versus|vs|contrast(?:s|ed|ing)?|differences?",
    "code_verb": r"implement\w*|build(?:s|ing)?|built|cod(?:e|es|ing)|develop\w*|program(?:s|ming)?"
    r"|refactor\w*",
    "code_noun": r"apis?|apps?|applications?|features?|endpoints?|scripts?|librar(?:y|ies)"
    r"|microservices?|websites?|backends?|frontends?|cli|sdks?",
    "tests": r"tests?|testing|unit-tests?",
    "design": r"design(?:s|ed|ing)?|plan(?:s|ned|ning)?|architect(?:s|ed|ing)?",
    "make": r"creat(?:e|es|ed|ing)",
    "write": r"writ(?:e|es|ing|ten)|wrote|draft\w*|blog\w*|posts?|articles?|reports?|essays?"
    r"|newsletters?|summar(?:y|ies|ise|ize)|whitepapers?|tutorials?|guides?",
    "docs": r"document(?:s|ing)?|documentation|docs|readme",
    "fix": r"debug\w*|fix(?:es|ed|ing)?|troubleshoot\w*|diagnos\w*|repair\w*",
    "fault": r"bugs?|errors?|crash\w*|exceptions?|fail(?:s|ed|ing|ure|ures)?|broken|regressions?"
    r"|leaks?",
}
_KEYWORDS = {family: re.compile(pattern) for family, pattern in KEYWORD_PATTERNS.items()}

# Families that can open a goal as its verb ("Compare ...", "Blog post about ..." counts as write).
LEAD_FAMILIES = frozenset(KEYWORD_PATTERNS) - {"code_noun", "fault"}
# Words that may come before the first lead verb, and words that join lead verbs.
FILLER_WORDS = frozenset(
    "please help me us i we you want need would like could can should to let lets let's first"
    " what which how is are do does".split()
)
JOINING_WORDS = frozenset({"and", "then", "also", "or"})
FRAMING_WORDS = (
    FILLER_WORDS
    | JOINING_WORDS
    | frozenset(
        "a an the some my our your this short long brief detailed technical comprehensive new"
        " simple quick concise in-depth beginner friendly beginner-friendly".split()
    )
)
# Document nouns (singular) and what titles call them.
DOCUMENT_KINDS: dict[str, str] = {
    "post": "post",
    "report": "report",
    "article": "article",
    "essay": "essay",
    "guide": "guide",
    "newsletter": "newsletter",
    "summary": "summary",
    "tutorial": "tutorial",
    "readme": "README",
    "whitepaper": "whitepaper",
    "documentation": "documentation",
    "doc": "documentation",
    "document": "documentation",
    "documenting": "documentation",
}

_TOKEN = re.compile(r"\w+(?:['’-]\w+)*")
_JOINING_PUNCTUATION = re.compile(r"[,/&+;]")
_TOPIC = re.compile(r"\b(?:about|on|regarding|concerning)\b", re.I)
_TESTS_OF = re.compile(r"^(?:(?:unit|integration|end-to-end)\s+)?tests?\s+(?:for|of)\s+", re.I)
_COMPARE_BETWEEN = re.compile(r"^(?:the\s+)?(?:differences?|trade-?offs?)\s+between\s+", re.I)
_COMPARE_SCOPE_END = re.compile(r"\b(?:for|in|when|as|on|to|regarding|under)\b", re.I)
_COMPARE_SEPARATOR = re.compile(r"\s*(?:[,;]|\b(?:and|or|vs|versus|with|against)\b\.?)\s*", re.I)


@dataclass(frozen=True)
class Rule:
    """Pick ``template`` when every group in ``lead`` and in ``frame`` meets the goal: a group
    is a set of keyword families, met when the goal has at least one of them."""

    template: str
    lead: tuple[frozenset[str], ...] = ()
    frame: tuple[frozenset[str], ...] = ()

    def matches(self, lead: frozenset[str], frame: frozenset[str]) -> bool:
        met = all(group & lead for group in self.lead)
        return met and all(group & frame for group in self.frame)


_RESEARCH = frozenset({"research", "compare"})
_CODE = frozenset({"code_verb", "code_noun"})
_WRITING = frozenset({"write", "docs"})

# First match wins: the goal's opening verbs first, then keywords anywhere in the frame.
RULES: tuple[Rule, ...] = (
    Rule("research_build", lead=(_RESEARCH, frozenset({"code_verb"}))),
    Rule("research_write", lead=(_RESEARCH, _WRITING)),
    Rule("debug", lead=(frozenset({"fix"}),)),
    Rule("write", lead=(frozenset({"docs"}),)),
    Rule("build", lead=(frozenset({"code_verb"}),)),
    Rule("test", lead=(frozenset({"write", "tests"}),), frame=(frozenset({"tests"}),)),
    Rule("build", lead=(frozenset({"write"}),), frame=(_CODE,)),  # "Write a script that ..."
    Rule("write", lead=(_WRITING,)),
    Rule("research", lead=(_RESEARCH,)),
    Rule("debug", frame=(frozenset({"fault"}),)),  # "The checkout page crashes on submit"
    Rule("build", frame=(_CODE,)),
    Rule("write", frame=(_WRITING,)),
    Rule("research", frame=(_RESEARCH,)),
    Rule("debug", frame=(frozenset({"fix"}),)),
    Rule("general"),
)


@dataclass(frozen=True)
class GoalReading:
    """What the planner understood of a goal; ``items`` holds 2+ things only when comparing."""

    template: str
    subject: str
    items: tuple[str, ...]
    document_kind: str


def _families(text: str) -> frozenset[str]:
    words = (token.casefold() for token in _TOKEN.findall(text))
    return frozenset(
        family for word in words for family, rx in _KEYWORDS.items() if rx.fullmatch(word)
    )


def _read_lead(goal: str) -> tuple[frozenset[str], int]:
    """The lead families and where the lead ends (a character offset into ``goal``).

    The lead is filler, a verb, then more verbs only when joined ("Research and implement",
    "Research, design and build"): the noun in "Research testing frameworks" stays in the subject.
    """
    families: set[str] = set()
    end = 0
    joined = True  # a verb may come next: at the start, or after "and" or a comma
    for match in _TOKEN.finditer(goal):
        word = match.group().casefold()
        verbs = _families(word) & LEAD_FAMILIES
        if verbs and (joined or _JOINING_PUNCTUATION.search(goal[end : match.start()])):
            families |= verbs
            joined = False
        elif families and word in JOINING_WORDS:
            joined = True
        elif families or word not in FILLER_WORDS:
            break
        end = match.end()
    return frozenset(families), end


def _is_framing(text: str) -> bool:
    words = [token.casefold() for token in _TOKEN.findall(text)]
    return bool(words) and all(w in FRAMING_WORDS or _families(w) & LEAD_FAMILIES for w in words)


def _split_frame(goal: str, lead_end: int) -> tuple[str, str]:
    """(frame text, raw subject): split at a topic word when the head is pure framing."""
    topic = _TOPIC.search(goal)
    if topic and _is_framing(goal[: topic.start()]):
        return goal[: topic.start()], goal[topic.end() :]
    return goal, goal[lead_end:]


def _tidy(subject: str) -> str:
    """Collapse whitespace, trim punctuation and say "the X" where the goal said "a X"."""
    text = " ".join(subject.split()).strip(" ,.;:!?-")
    text = re.sub(r"^(?:for|of|to)\s+", "", text, flags=re.IGNORECASE)
    text = re.sub(r"^(?:an?|the)\s+", "the ", text, flags=re.IGNORECASE)
    return text


def _compared_items(subject: str) -> tuple[str, ...]:
    """The 2 to MAX_COMPARED_ITEMS things a comparison names ("Redis and RabbitMQ"), else ()."""
    scope = _COMPARE_BETWEEN.sub("", subject)
    scope_end = _COMPARE_SCOPE_END.search(scope)
    if scope_end:
        scope = scope[: scope_end.start()]
    items = tuple(_tidy(item) for item in _COMPARE_SEPARATOR.split(scope))
    unusable = any(not item or len(item) > MAX_COMPARED_ITEM_CHARS for item in items)
    return items if 2 <= len(items) <= MAX_COMPARED_ITEMS and not unusable else ()


def _document_kind(frame: str) -> str:
    """What the goal calls its document ("blog post", "report"), or "text" when unnamed."""
    words = [token.casefold() for token in _TOKEN.findall(frame)]
    singular = (word if word in DOCUMENT_KINDS else word.removesuffix("s") for word in words)
    kind = next((DOCUMENT_KINDS[word] for word in singular if word in DOCUMENT_KINDS), "text")
    return "blog post" if "blog" in words and kind in ("post", "text") else kind


def read_goal(goal: str) -> GoalReading:
    """Classify a goal and extract its subject; the first half of ``plan_goal``, exposed so
    callers (and people debugging a surprising plan) can see why a template was chosen."""
    lead, lead_end = _read_lead(goal)
    frame, raw_subject = _split_frame(goal, lead_end)
    frame_families = _families(frame)
    if "make" in lead:  # "create" means writing when a document is named, coding otherwise
        lead = (lead - {"make"}) | ({"write"} if frame_families & _WRITING else {"code_verb"})
    template = next(rule.template for rule in RULES if rule.matches(lead, frame_families))
    subject = _tidy(raw_subject) if template != "general" else ""
    if template == "test":
        subject = _TESTS_OF.sub("", subject)
    subject = subject or _tidy(goal) or " ".join(goal.split()) or "the goal"
    compares = "compare" in (lead | frame_families) and template == "research"
    items = _compared_items(subject) if compares else ()
    return GoalReading(template, subject, items, _document_kind(frame))


def _clip(text: str, limit: int) -> str:
    """Shorten to at most ``limit`` characters at a word boundary, marking the cut with "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]  # room for the ellipsis
    if " " in head[limit // 2 :]:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:-") + "…"


def _context_sentence(initial_context: Mapping[str, Any]) -> str:
    if not initial_context:
        return ""
    keys = [_clip(str(key), 40) for key in list(initial_context)[:MAX_CONTEXT_KEYS_NAMED]]
    more = ", …" if len(initial_context) > MAX_CONTEXT_KEYS_NAMED else ""
    return f" Take the given context into account ({', '.join(keys)}{more})."


def _fields(reading: GoalReading, item: str | None, limit: int) -> dict[str, str]:
    subject = _clip(reading.subject, limit)
    return {
        "subject": subject,
        "item": _clip(item or reading.subject, limit),
        "kind": reading.document_kind,
    }


def _make_step(
    template: StepTemplate,
    step_id: str,
    depends_on: list[str],
    reading: GoalReading,
    item: str | None,
    context_sentence: str,
) -> PlanStep:
    title_fields = _fields(reading, item, TITLE_SUBJECT_CHARS)
    text_fields = _fields(reading, item, DESCRIPTION_SUBJECT_CHARS)
    parameters: dict[str, Any] = {"rule": reading.template, "subject": text_fields["subject"]}
    if item is not None:
        parameters["item"] = item
    if "{kind}" in template.title + template.description:
        parameters["documentKind"] = reading.document_kind
    return PlanStep(
        id=step_id,
        title=_clip(template.title.format(**title_fields), MAX_TITLE_CHARS),
        description=template.description.format(**text_fields) + context_sentence,
        agent_type=template.agent_type,
        required_capabilities=[template.capability],
        depends_on=depends_on,
        parameters=parameters,
    )


def _expand(reading: GoalReading, initial_context: Mapping[str, Any]) -> list[PlanStep]:
    """Instantiate the chosen template: ids step-1.., per-item fan-out, dependencies by key."""
    context_sentence = _context_sentence(initial_context)
    ids_by_key: dict[str, list[str]] = {}
    steps: list[PlanStep] = []
    for template in TEMPLATES[reading.template]:
        items: tuple[str | None, ...] = (reading.items or (None,)) if template.per_item else (None,)
        for item in items:
            step_id = f"step-{len(steps) + 1}"
            depends_on = [dep for key in template.after for dep in ids_by_key[key]]
            steps.append(_make_step(template, step_id, depends_on, reading, item, context_sentence))
            ids_by_key.setdefault(template.key, []).append(step_id)
    return steps


def plan_goal(goal: str, initial_context: dict[str, Any] | None = None) -> TaskPlan:
    """Decompose ``goal`` into a validated TaskPlan for the default fleet.

    Deterministic and offline (the same goal and context keys give the same plan): the planner
    used when no LLM is configured, and a baseline for an LLM's plans. ``initial_context`` keys
    are named in step descriptions. Steps carry agentType and requiredCapabilities from the
    default fleet; ``parallelizable`` comes from the dependency graph.

    Raises:
        PlanError: when the goal is longer than MAX_GOAL_CHARS, more than a TaskPlan holds.
    """
    if len(goal) > MAX_GOAL_CHARS:
        raise PlanError(
            f"the goal is {len(goal)} characters long; the planner accepts at most "
            f"{MAX_GOAL_CHARS}. Shorten the goal and pass details in initialContext.",
            details={"goalChars": len(goal), "maxGoalChars": MAX_GOAL_CHARS},
        )
    steps = _expand(read_goal(goal), initial_context or {})
    graph = PlanGraph.build(steps)
    return TaskPlan(goal=goal, steps=steps, parallelizable=graph.is_parallelizable())
