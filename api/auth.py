"""Authentication, roles, session ownership and rate limits, applied before every view.

- **Tokens** (MEOWSTIK_API_TOKENS): ``Authorization: Bearer <token>``; each names a user id and a
  role. The dashboard logs in with the same tokens and then carries a signed cookie; requests
  that change something with that cookie must echo its CSRF token (``X-CSRF-Token`` header or a
  ``csrf_token`` form field).
- **Open mode** (no tokens): everyone is admin, but only loopback clients are answered, and an
  API bound to any other address refuses to start (api/gunicorn_conf.py).
- **Roles**: ``admin`` may do everything; ``user`` submits goals and reads and steers the sessions
  whose userId is its own. Another user's session answers 404, exactly like a missing one.
- **Rate limit**: per token, in Redis (orchestrator/store/ratelimit.py), 429 with Retry-After.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from api.errors import ApiError
from api.operations import LOCATION, STORE, Operation, Param, html
from api.routes import services
from orchestrator.core.access import OPEN, Principal, TokenTable, is_loopback
from orchestrator.core.errors import SessionNotFoundError
from orchestrator.settings import Settings
from orchestrator.store.ratelimit import RateLimiter

COOKIE_NAME = "meowstik_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Answered to anyone: health checks, the API description, the login page, static files.
PUBLIC_ENDPOINTS = frozenset(
    {
        "health.healthz",
        "flower.healthcheck",
        "docs.openapi_document",
        "docs.docs_page",
        "auth.login_page",
        "auth.login",
        "dashboard.static",
        "static",
    }
)
# Operations views and changes to the fleet: admin tokens only.
ADMIN_ENDPOINTS = frozenset(
    {
        "agents.register_agent",
        "agents.update_agent",
        "agents.delete_agent",
        "experiments.create_experiment",
        "experiments.stop_experiment",
        "logs.recent_logs",
        "flower.list_workers",
        "flower.queue_lengths",
        "flower.list_tasks",
        "flower.task_info",
        "flower.task_types",
        "flower.revoke_task",
        "dashboard.queues_page",
        "dashboard.workers_page",
    }
)

blueprint = Blueprint("auth", __name__)


def principal() -> Principal:
    """The caller of the current request (set before every view)."""
    return g.get("principal", OPEN)


def install(app: Flask, settings: Settings, tokens: TokenTable, limiter: RateLimiter) -> None:
    """Wire authentication into ``app``: cookie settings, the login pages and the checks."""
    if settings.secret_key is not None:
        app.secret_key = settings.secret_key.get_secret_value().encode()
    else:  # open mode has no logins; a random key signs nothing anyone needs
        app.secret_key = tokens.secret() if tokens.enabled else secrets.token_bytes(32)
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        PERMANENT_SESSION_LIFETIME=12 * 3600,
    )
    app.extensions["meowstik.auth"] = (tokens, limiter)
    app.register_blueprint(blueprint)
    app.before_request(_check_request)

    @app.context_processor
    def _login_state():
        caller = principal()
        return {
            "caller": caller,
            "auth_enabled": tokens.enabled,
            "csrf_token": session.get("csrf", "") if caller.via == "cookie" else "",
        }


def _check_request():
    tokens, limiter = current_app.extensions["meowstik.auth"]
    endpoint = request.endpoint or ""
    if not tokens.enabled:
        if not is_loopback(request.remote_addr):
            raise ApiError(
                403,
                "auth_not_configured",
                "this API runs without tokens and answers only loopback clients; set "
                "MEOWSTIK_API_TOKENS on the API to serve other hosts",
            )
        g.principal = OPEN
        return _check_owner(endpoint)
    if endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None  # unknown paths fall through to the JSON 404/405
    caller = _authenticate(tokens)
    if caller is None:
        if endpoint.startswith("dashboard."):
            return redirect(url_for("auth.login_page", next=request.full_path.rstrip("?")))
        raise ApiError(
            401,
            "unauthenticated",
            "send 'Authorization: Bearer <token>' with a token from MEOWSTIK_API_TOKENS "
            "(or log in to the dashboard at /login)",
        )
    g.principal = caller
    verdict = limiter.check(caller.fingerprint)
    if not verdict.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"more than {limiter.per_minute} requests a minute (burst {limiter.burst}) for this "
            f"token; retry in {verdict.retry_after_s} s",
            {"retryAfterS": verdict.retry_after_s},
            headers={"Retry-After": str(verdict.retry_after_s)},
        )
    if caller.via == "cookie" and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            raise ApiError(
                403,
                "csrf_failed",
                f"a change made with the dashboard's login cookie must carry its CSRF token in "
                f"the {CSRF_HEADER} header; reload the page and retry",
            )
    if endpoint in ADMIN_ENDPOINTS and not caller.is_admin:
        raise ApiError(
            403,
            "forbidden",
            f"{request.method} {request.path} needs an admin token; {caller.user_id!r} is a user",
        )
    return _check_owner(endpoint)


def _authenticate(tokens: TokenTable) -> Principal | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "unauthenticated", "the Authorization header must be 'Bearer <token>'"
            )
        found = tokens.lookup(token.strip())
        if found is None:
            raise ApiError(401, "invalid_token", "the bearer token is not one the API accepts")
        return found
    fingerprint = session.get("fp")
    if isinstance(fingerprint, str):
        return tokens.by_fingerprint(fingerprint)  # None once the token was removed
    return None


def _check_owner(endpoint: str):
    """Another user's session is answered like a missing one: 404, nothing revealed."""
    session_id = (request.view_args or {}).get("session_id")
    caller = principal()
    if session_id is None or caller.is_admin:
        return None
    owner = services().engine.session_owner(session_id)
    if owner is not None and caller.may_see(owner):
        return None
    if endpoint == "dashboard.session_page":
        return render_template("missing.html", session_id=session_id), 404
    raise SessionNotFoundError(session_id)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never another host (open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("dashboard.sessions_page")
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else url_for("dashboard.sessions_page")


@blueprint.get("/login")
def login_page():
    return render_template("login.html", next=_safe_next(request.args.get("next")), problem="")


@blueprint.post("/login")
def login():
    tokens, _ = current_app.extensions["meowstik.auth"]
    target = _safe_next(request.form.get("next"))
    found = tokens.lookup(request.form.get("token", "").strip()) if tokens.enabled else None
    if found is None:
        problem = (
            "this API runs open (no tokens configured); no login needed"
            if not tokens.enabled
            else "that token is not one the API accepts"
        )
        return render_template("login.html", next=target, problem=problem), 401
    session.clear()
    session.permanent = True
    session.update(fp=found.fingerprint, csrf=secrets.token_urlsafe(32))
    return redirect(target)


@blueprint.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("auth.login_page"))


OPERATIONS = (
    Operation(
        "get",
        "/login",
        "auth.login_page",
        "Dashboard: the login form",
        "dashboard",
        {200: html("the page")},
        params=(Param("next", "query", {"type": "string"}, "where to go after logging in"),),
        auth=False,
    ),
    Operation(
        "post",
        "/login",
        "auth.login",
        "Dashboard: log in with an API token; sets the session cookie",
        "dashboard",
        {
            302: html("logged in: a redirect to next (a path on this site)", LOCATION),
            401: html("not a token the API accepts (the form again)"),
        },
        body={
            "type": "object",
            "properties": {"token": {"type": "string"}, "next": {"type": "string"}},
            "required": ["token"],
        },
        body_media="application/x-www-form-urlencoded",
        errors=(413,),
        auth=False,
    ),
    Operation(
        "post",
        "/logout",
        "auth.logout",
        "Dashboard: log out (clears the session cookie)",
        "dashboard",
        {302: html("a redirect to /login", LOCATION)},
        errors=STORE,
    ),
)
