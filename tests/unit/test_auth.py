"""Tokens, roles, session isolation, rate limits and the dashboard login, through Flask's test
client on a real Redis (the rate limit is a Lua script on Redis's clock)."""

from __future__ import annotations

import re

import pytest

from api import create_app
from api.gunicorn_conf import open_binds
from orchestrator.core.access import Role, is_loopback, load_tokens, raw_tokens
from orchestrator.core.errors import TokenConfigError
from orchestrator.core.fleet import DEFAULT_AGENTS
from orchestrator.settings import Settings
from orchestrator.store.agents import AgentRegistry
from orchestrator.store.keys import Keys
from tests.support.recording import RecordingDispatcher
from tests.support.spec import SPEC_ORCHESTRATE_BODY

ADMIN = "admin-token-0123456789abcdef"
ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef00"
TOKENS = f"ops:admin:{ADMIN},alice:user:{ALICE}\nbob:user:{BOB}"
# the spec's body without its userId: a user token's sessions take the token's user id
GOAL = {key: value for key, value in SPEC_ORCHESTRATE_BODY.items() if key != "userId"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_app(client, **overrides):
    settings = Settings(**{"api_tokens": TOKENS, **overrides})
    registry = AgentRegistry(client, Keys(settings.key_prefix))
    for agent in DEFAULT_AGENTS:
        registry.register(agent, worker="w1", now_ms=0, alive_ms=10**13)
    return create_app(settings, redis_client=client, dispatcher=RecordingDispatcher())


@pytest.fixture
def api(real_redis):
    return make_app(real_redis).test_client()


def submit(api, token: str, **extra) -> dict:
    response = api.post(
        "/api/orchestrator/orchestrate",
        json={**GOAL, **extra},
        headers=bearer(token),
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


# --- the token table --------------------------------------------------------------------------


def test_tokens_parse_into_users_and_roles_and_only_digests_are_kept():
    table = load_tokens(TOKENS, None)
    assert table.lookup(ALICE).user_id == "alice" and table.lookup(ALICE).role == Role.USER
    assert table.lookup(ADMIN).role == Role.ADMIN
    assert table.lookup("alice-token-0123456789abcdeX") is None
    assert ALICE not in repr(table.entries)
    assert table.summary() == "3 token(s): 1 admin, 2 user"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("alice:user", "is not user_id:role:token"),
        ("alice:root:0123456789abcdefgh", "role 'root' must be admin or user"),
        ("alice:user:short", "shorter than 16 characters"),
        ("al ice:user:0123456789abcdefgh", "user id 'al ice'"),
        ("a:user:0123456789abcdefgh,b:admin:0123456789abcdefgh", "given twice"),
    ],
)
def test_malformed_token_entries_are_refused_naming_the_entry(text, fragment):
    with pytest.raises(TokenConfigError, match=re.escape(fragment)):
        load_tokens(text, None)


def test_tokens_file_adds_entries_and_an_unreadable_one_is_named(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# ops\nbob:user:{BOB}\n")
    table = load_tokens(f"ops:admin:{ADMIN}", path)
    assert table.lookup(BOB).user_id == "bob" and table.lookup(ADMIN).user_id == "ops"
    assert [entry[0] for entry in raw_tokens(f"ops:admin:{ADMIN}", path)] == ["ops", "bob"]
    with pytest.raises(TokenConfigError, match="cannot be read"):
        load_tokens(None, tmp_path / "missing")


def test_loopback_rule_and_the_gunicorn_bind_check():
    assert all(map(is_loopback, ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost", None]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "example.com"]))
    assert open_binds([("127.0.0.1", 5000), "/tmp/api.sock"]) == []
    assert open_binds([("0.0.0.0", 5000), ("127.0.0.1", 5001)]) == ["0.0.0.0:5000"]


# --- open mode --------------------------------------------------------------------------------


def test_open_mode_serves_loopback_and_refuses_other_hosts(real_redis):
    open_api = make_app(real_redis, api_tokens=None).test_client()
    assert open_api.get("/api/orchestrator/agents").status_code == 200
    remote = {"REMOTE_ADDR": "10.1.2.3"}
    error = error_of(open_api.get("/api/orchestrator/agents", environ_base=remote), 403)
    assert error["code"] == "auth_not_configured" and "MEOWSTIK_API_TOKENS" in error["message"]


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "unauthenticated"),
        ({"Authorization": f"Basic {ALICE}"}, "unauthenticated"),
        ({"Authorization": "Bearer "}, "unauthenticated"),
        ({"Authorization": "Bearer not-a-configured-token-at-all"}, "invalid_token"),
    ],
)
def test_requests_without_a_valid_token_get_401_and_change_nothing(api, real_redis, headers, code):
    before = sorted(real_redis.keys("*"))
    response = api.post("/api/orchestrator/orchestrate", json=GOAL, headers=headers)
    assert error_of(response, 401)["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert sorted(real_redis.keys("*")) == before
    assert api.get("/api/orchestrator/sessions", headers=headers).status_code == 401


def test_health_checks_need_no_token(api):
    assert api.get("/healthz").status_code == 200
    assert api.get("/healthcheck").status_code == 200


def test_admin_only_endpoints_refuse_user_tokens(api):
    user, admin = bearer(ALICE), bearer(ADMIN)
    for method, path in [
        ("post", "/api/orchestrator/agents"),
        ("patch", "/api/orchestrator/agents/coder-001"),
        ("delete", "/api/orchestrator/agents/coder-001"),
        ("get", "/api/orchestrator/logs"),
        ("get", "/api/workers"),
        ("get", "/api/tasks"),
        ("get", "/api/queues/length"),
        ("get", "/queues"),
    ]:
        response = getattr(api, method)(path, json={}, headers=user)
        assert error_of(response, 403)["code"] == "forbidden", (method, path)
    assert api.get("/api/orchestrator/agents/coder-001", headers=user).status_code == 200
    patched = api.patch("/api/orchestrator/agents/coder-001", json={"priority": 7}, headers=admin)
    assert patched.status_code == 200 and patched.get_json()["priority"] == 7


# --- isolation --------------------------------------------------------------------------------


def test_a_users_session_is_its_own_and_others_get_404(api):
    mine = submit(api, ALICE)
    assert mine["userId"] == "alice"
    sid = mine["sessionId"]
    base = f"/api/orchestrator/sessions/{sid}"
    unknown = error_of(
        api.get("/api/orchestrator/sessions/no-such-session", headers=bearer(BOB)), 404
    )
    for method, path, body in [
        ("get", base, None),
        ("post", f"{base}/cancel", None),
        ("post", f"{base}/input", {"stepId": "step-1", "value": 1}),
        ("patch", f"{base}/context", {"x": 1}),
        ("get", f"{base}/logs", None),
        ("get", f"{base}/stats", None),
        ("get", f"{base}/events", None),
    ]:
        response = getattr(api, method)(path, json=body, headers=bearer(BOB))
        error = error_of(response, 404)
        assert error["code"] == unknown["code"], path
    assert api.get(f"/sessions/{sid}", headers=bearer(BOB)).status_code == 404
    # still executing: bob's cancel did nothing
    assert api.get(base, headers=bearer(ALICE)).get_json()["status"] == "executing"
    assert api.get(base, headers=bearer(ADMIN)).status_code == 200


def test_listings_show_a_user_only_its_own_sessions(api):
    alice_sid = submit(api, ALICE)["sessionId"]
    bob_sid = submit(api, BOB)["sessionId"]
    admin_sid = submit(api, ADMIN, userId="carol")["sessionId"]

    def listed(token, query=""):
        response = api.get(f"/api/orchestrator/sessions{query}", headers=bearer(token))
        assert response.status_code == 200
        return {row["sessionId"] for row in response.get_json()["sessions"]}

    assert listed(ALICE) == {alice_sid}
    assert listed(BOB, "?userId=alice") == set()
    assert listed(ADMIN) == {alice_sid, bob_sid, admin_sid}
    assert listed(ADMIN, "?userId=carol") == {admin_sid}
    page = api.get("/", headers=bearer(BOB)).get_data(as_text=True)
    assert bob_sid in page and alice_sid not in page


def test_clients_cannot_submit_as_someone_else_or_set_server_fields(api):
    response = api.post(
        "/api/orchestrator/orchestrate",
        json={**GOAL, "userId": "alice"},
        headers=bearer(BOB),
    )
    error = error_of(response, 422)
    assert error["details"]["errors"][0]["location"] == "body.userId"
    for field, value in [("owner", "bob"), ("status", "completed"), ("sessionId", "x")]:
        response = api.post(
            "/api/orchestrator/orchestrate",
            json={**GOAL, field: value},
            headers=bearer(BOB),
        )
        assert error_of(response, 422)["details"]["errors"][0]["location"] == f"body.{field}"
    response = api.patch(
        "/api/orchestrator/agents/coder-001", json={"currentLoad": 0}, headers=bearer(ADMIN)
    )
    assert error_of(response, 422)["details"]["errors"][0]["location"] == "body.currentLoad"


# --- rate limits ------------------------------------------------------------------------------


def test_rate_limit_is_per_token_and_answers_429_with_retry_after(real_redis):
    api = make_app(real_redis, rate_limit_per_minute=6, rate_limit_burst=3).test_client()
    statuses = [
        api.get("/api/orchestrator/agents", headers=bearer(ALICE)).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    limited = api.get("/api/orchestrator/agents", headers=bearer(ALICE))
    assert error_of(limited, 429)["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    assert api.get("/api/orchestrator/agents", headers=bearer(BOB)).status_code == 200
    # a second app (another gunicorn process) shares the same budget through Redis
    other = make_app(real_redis, rate_limit_per_minute=6, rate_limit_burst=3).test_client()
    assert other.get("/api/orchestrator/agents", headers=bearer(ALICE)).status_code == 429


# --- the dashboard login ----------------------------------------------------------------------


def test_dashboard_login_cookie_and_csrf(api):
    response = api.get("/sessions/x?tab=logs")
    assert response.status_code == 302 and response.location.startswith("/login?next=")
    assert api.post("/login", data={"token": "wrong-token-0123456789"}).status_code == 401
    assert api.get("/").status_code == 302
    response = api.post("/login", data={"token": ALICE, "next": "//evil.example/"})
    assert response.status_code == 302 and response.location == "/"
    cookie = api.get_cookie("meowstik_session")
    assert cookie is not None and cookie.http_only and ALICE not in cookie.value
    page = api.get("/").get_data(as_text=True)
    assert "alice (user)" in page
    assert 'href="/queues"' not in page  # admin-only pages are not offered to a user
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    sid = submit(api, ALICE)["sessionId"]
    cancel = f"/api/orchestrator/sessions/{sid}/cancel"
    assert error_of(api.post(cancel), 403)["code"] == "csrf_failed"
    assert (
        error_of(api.post(cancel, headers={"X-CSRF-Token": "forged"}), 403)["code"] == "csrf_failed"
    )
    assert api.post(cancel, headers={"X-CSRF-Token": csrf}).get_json()["status"] == "cancelled"

    assert api.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert api.get("/api/orchestrator/sessions").status_code == 401


def test_a_login_cookie_dies_with_its_token(real_redis):
    shared_key = "k" * 32
    rotated = make_app(real_redis, api_tokens=f"bob:user:{BOB}", secret_key=shared_key)
    before = make_app(real_redis, secret_key=shared_key).test_client()
    before.post("/login", data={"token": ALICE})
    assert before.get("/api/orchestrator/sessions").status_code == 200
    cookie = before.get_cookie("meowstik_session").value
    after = rotated.test_client()
    after.set_cookie("meowstik_session", cookie)
    assert after.get("/api/orchestrator/sessions").status_code == 401
