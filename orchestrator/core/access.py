"""Who may call the API: the token table from configuration, roles, and the loopback rule.

Pure apart from reading MEOWSTIK_API_TOKENS_FILE. Tokens are kept only as SHA-256 digests and
compared in constant time, so a token never sits in memory longer than parsing takes and a
digest is safe to use in Redis keys (rate limits) and login cookies (revocation checks).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from orchestrator.core.errors import TokenConfigError

USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_TOKEN_CHARS = 16


class Role(StrEnum):
    ADMIN = "admin"  # register and change agents, see and steer every session, operations views
    USER = "user"  # submit goals, read and steer its own sessions


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    user_id: str | None  # None only in open mode
    role: Role
    via: str  # "token" | "cookie" | "open"
    fingerprint: str  # digest prefix of the token (rate limits, cookies); "" in open mode

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def may_see(self, owner: str | None) -> bool:
        """A session belongs to the user in its userId; admins see every session."""
        return self.is_admin or (owner is not None and owner == self.user_id)


OPEN = Principal(user_id=None, role=Role.ADMIN, via="open", fingerprint="")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenTable:
    """The configured tokens, by digest. Empty: the API runs open (loopback only)."""

    entries: dict[str, tuple[str, Role]]

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def lookup(self, token: str) -> Principal | None:
        wanted = digest(token)
        found = None
        for known, (user_id, role) in self.entries.items():  # constant time per entry
            if hmac.compare_digest(known, wanted):
                found = Principal(user_id, role, "token", known[:32])
        return found

    def by_fingerprint(self, fingerprint: str) -> Principal | None:
        """The principal a login cookie names, if its token is still configured."""
        for known, (user_id, role) in self.entries.items():
            if hmac.compare_digest(known[:32], fingerprint):
                return Principal(user_id, role, "cookie", known[:32])
        return None

    def summary(self) -> str:
        roles = [role for _, role in self.entries.values()]
        return (
            f"{len(roles)} token(s): {roles.count(Role.ADMIN)} admin, {roles.count(Role.USER)} user"
        )

    def secret(self) -> bytes:
        """A signing key derived from every token: changing the tokens voids old cookies."""
        material = "meowstik-cookie:" + ",".join(sorted(self.entries))
        return hashlib.sha256(material.encode()).digest()


def parse_entries(text: str, source: str) -> list[tuple[str, Role, str]]:
    """The (user id, role, token) entries of ``text``, in order; TokenConfigError names a bad
    entry by its number in ``source``."""
    entries: list[tuple[str, Role, str]] = []
    for number, raw in enumerate(re.split(r"[,\n]", text), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":", 2)
        where = f"{source} entry {number}"
        if len(parts) != 3:
            raise TokenConfigError(
                f"{where} is not user_id:role:token (e.g. alice:user:<32 random characters>)"
            )
        user_id, role, token = (part.strip() for part in parts)
        if not USER_ID_PATTERN.match(user_id):
            raise TokenConfigError(
                f"{where}: user id {user_id!r} must be 1-64 letters, digits, _ . @ or -"
            )
        if role not in Role.__members__.values():
            raise TokenConfigError(f"{where}: role {role!r} must be admin or user")
        if len(token) < MIN_TOKEN_CHARS:
            raise TokenConfigError(
                f"{where}: the token for {user_id!r} is shorter than {MIN_TOKEN_CHARS} characters;"
                " generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        entries.append((user_id, Role(role), token))
    return entries


def raw_tokens(tokens: str | None, tokens_file: Path | None) -> list[tuple[str, Role, str]]:
    """Every configured (user id, role, token) entry, MEOWSTIK_API_TOKENS first, then the file.

    Raises TokenConfigError for a malformed entry or an unreadable file. Processes that call the
    API themselves (``meowstik up`` probing it) take a token from here; the API keeps digests.
    """
    entries = parse_entries(tokens, "MEOWSTIK_API_TOKENS") if tokens else []
    if tokens_file is not None:
        try:
            text = tokens_file.read_text()
        except OSError as exc:
            raise TokenConfigError(
                f"MEOWSTIK_API_TOKENS_FILE {str(tokens_file)!r} cannot be read: {exc.strerror}"
            ) from exc
        entries += parse_entries(text, f"MEOWSTIK_API_TOKENS_FILE {tokens_file}")
    return entries


def load_tokens(tokens: str | None, tokens_file: Path | None) -> TokenTable:
    """The token table from MEOWSTIK_API_TOKENS and MEOWSTIK_API_TOKENS_FILE together."""
    table: dict[str, tuple[str, Role]] = {}
    for user_id, role, token in raw_tokens(tokens, tokens_file):
        key = digest(token)
        if key in table:
            raise TokenConfigError(f"the token for {user_id!r} is given twice")
        table[key] = (user_id, role)
    return TokenTable(table)


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost (and a unix socket, given as None or a path)."""
    if host is None or host.startswith("/") or host.startswith("unix:"):
        return True
    bare = host.strip("[]")
    if bare == "localhost":
        return True
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
