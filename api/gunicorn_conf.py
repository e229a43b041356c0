"""Gunicorn settings the API always runs with (``--config python:api.gunicorn_conf``).

Refuses to start an API that would serve other hosts without tokens: every bound address must be
loopback (or a unix socket) unless MEOWSTIK_API_TOKENS is set.
"""

from __future__ import annotations

import json
import sys

from gunicorn import util

from orchestrator.core.access import is_loopback
from orchestrator.core.errors import TokenConfigError

# Requests gunicorn refuses itself (a request line over the limit, malformed HTTP) get the API's
# JSON error shape instead of gunicorn's HTML page.
limit_request_line = 8190  # gunicorn's maximum; longer request lines get 414
# gunicorn 27's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), so a
# second API on the host (tests, `make bench`, two `up`s) takes it over from the first; unused here
control_socket_disable = True

_HINTS = {
    414: "shorten the URL: send long values in a JSON body instead of the path or query",
    431: "send fewer or shorter headers",
}


def json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn.util.write_error with a JSON body (workers call it through the module)."""
    hint = _HINTS.get(status_int, "fix the request's HTTP framing and retry")
    body = json.dumps(
        {
            "error": {
                "code": reason.lower().replace(" ", "_").replace("-", "_"),
                "message": f"{mesg or reason}; {hint}",
                "details": {},
            }
        }
    )
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("latin1"))


util.write_error = json_error


def open_binds(addresses: list) -> list[str]:
    """The bound addresses other hosts could reach (gunicorn gives (host, port) or a path)."""
    return [
        f"{address[0]}:{address[1]}"
        for address in addresses
        if isinstance(address, tuple) and not is_loopback(address[0])
    ]


def on_starting(server) -> None:
    from pydantic import ValidationError

    from orchestrator.settings import Settings

    try:
        tokens = Settings().token_table()
    except (TokenConfigError, ValidationError) as exc:
        print(f"meowstik api: cannot start: {exc}", file=sys.stderr, flush=True)
        sys.exit(3)
    exposed = open_binds(list(server.cfg.address))
    if exposed and not tokens.enabled:
        print(
            f"meowstik api: refusing to listen on {', '.join(exposed)} without authentication: "
            "set MEOWSTIK_API_TOKENS (entries user_id:role:token) or bind to 127.0.0.1",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(3)
