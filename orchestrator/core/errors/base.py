"""The root of the tree and the errors of the process's edges: store, broker, API, settings, and
the errors agents raise. See the package docstring for the whole tree."""

from __future__ import annotations

from typing import Any

NO_ANSWER_RETRY_AFTER_S = 1  # Redis restarting or a dropped connection: back soon
REFUSED_WRITE_RETRY_AFTER_S = 5  # out of memory or disk: an operator may have to act


class OrchestratorError(Exception):
    code = "orchestrator_error"
    http_status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class StoreUnavailableError(OrchestratorError):
    """Redis did not answer, or refused the credentials. ``retryable`` says whether waiting
    helps (a wrong password does not); a retryable one asks clients to wait ``retry_after_s``
    (the API's ``Retry-After``)."""

    code = "store_unavailable"
    http_status = 503

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after_s: int = NO_ANSWER_RETRY_AFTER_S,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.retryable = retryable
        self.retry_after_s = retry_after_s if retryable else None
        merged = {"retryable": retryable, **(details or {})}
        if self.retry_after_s is not None:
            merged["retryAfterS"] = self.retry_after_s
        super().__init__(message, details=merged)

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` when waiting helps (what the API's error handler sends)."""
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}

    @classmethod
    def refused_credentials(cls) -> StoreUnavailableError:
        return cls(
            "Redis refused the API's credentials (MEOWSTIK_REDIS_URL: wrong user or "
            "password, a disabled user, or missing ACL permissions); an operator must fix "
            "the URL",
            retryable=False,
        )

    @classmethod
    def no_answer(cls, what: str) -> StoreUnavailableError:
        return cls(f"Redis did not answer ({what}); retry shortly", retryable=True)


class StoreOutOfMemoryError(StoreUnavailableError):
    """Redis reached its ``maxmemory`` and, with ``maxmemory-policy noeviction``, refuses every
    write ("OOM command not allowed"). Nothing of the refused operation was recorded; waiting
    helps once memory is freed (sessions expire after retention) or maxmemory is raised."""

    code = "store_out_of_memory"

    def __init__(self) -> None:
        super().__init__(
            "Redis is out of memory (used memory reached maxmemory with maxmemory-policy "
            "noeviction) and refuses writes; nothing was recorded. Retry later; an operator "
            "must free memory or raise the limit (CONFIG SET maxmemory with more bytes; a "
            "shorter MEOWSTIK_SESSION_RETENTION_S keeps less)",
            retry_after_s=REFUSED_WRITE_RETRY_AFTER_S,
            details={"redis": "OOM"},
        )


class StoreNotWritableError(StoreUnavailableError):
    """Redis refuses writes because it cannot persist them ("MISCONF": an AOF write failed, e.g.
    a full disk, or an RDB snapshot failed with stop-writes-on-bgsave-error; ``persistence`` aof
    or rdb) or cannot replicate them ("NOREPLICAS": fewer replicas than its
    min-replicas-to-write are connected, e.g. just after a failover; ``persistence``
    replicas). Nothing of the refused operation was recorded; Redis accepts writes again once it
    can persist (or a replica attaches)."""

    code = "store_not_writable"

    def __init__(self, persistence: str) -> None:
        self.persistence = persistence
        if persistence == "replicas":
            message = (
                "Redis refuses writes because fewer replicas than its min-replicas-to-write are "
                "connected (NOREPLICAS: after a failover, until a replica attaches); nothing was "
                "recorded. Retry later, when a replica is back"
            )
            reply = "NOREPLICAS"
        else:
            what = "append-only file" if persistence == "aof" else "RDB snapshot"
            message = (
                f"Redis refuses writes because it cannot save its {what} (MISCONF: usually a "
                "full disk or an unwritable data directory); nothing was recorded. Retry later; "
                "an operator must free disk space or fix Redis's dir (Redis's log says which), "
                "after which Redis accepts writes again"
            )
            reply = "MISCONF"
        super().__init__(
            message,
            retry_after_s=REFUSED_WRITE_RETRY_AFTER_S,
            details={"redis": reply, "persistence": persistence},
        )


class ReplicaAckTimeoutError(StoreUnavailableError):
    """The master applied a write but fewer replicas than MEOWSTIK_REDIS_MIN_REPLICA_ACKS
    confirmed it (Redis WAIT) within MEOWSTIK_REDIS_REPLICA_WAIT_MS: a failover now could lose
    it. Retryable, unlike the other store errors the write exists (on the master), so a retry
    must be one the server can recognise: the same Idempotency-Key."""

    code = "replica_ack_timeout"

    def __init__(self, required: int, acknowledged: int, waited_ms: int) -> None:
        self.required = required
        self.acknowledged = acknowledged
        self.waited_ms = waited_ms
        super().__init__(
            f"Redis stored the write but only {acknowledged} of the {required} replica(s) "
            f"MEOWSTIK_REDIS_MIN_REPLICA_ACKS asks for confirmed it within {waited_ms} ms "
            "(MEOWSTIK_REDIS_REPLICA_WAIT_MS), so a failover could still lose it. Retry with "
            "the same Idempotency-Key: the retry returns this session rather than a second one",
            retryable=True,
        )
        self.details.update(
            replicasRequired=required, replicasAcknowledged=acknowledged, waitedMs=waited_ms
        )


class DispatchError(OrchestratorError):
    code = "broker_unavailable"
    http_status = 503


class ApiError(OrchestratorError):
    """A request refused at the API's edge (authentication, rate limit, body shape), with its
    HTTP status, code and response headers given per instance."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.http_status = status
        self.code = code
        self.headers = dict(headers or {})
        if status == 401:
            self.headers.setdefault("WWW-Authenticate", 'Bearer realm="meowstik"')

    @property
    def status(self) -> int:
        return self.http_status


class ConfigurationError(OrchestratorError, ValueError):
    """Settings that cannot be used; the message says which entry and why."""

    code = "configuration_error"


class TokenConfigError(ConfigurationError):
    """MEOWSTIK_API_TOKENS or its file cannot be used; the message says which entry and why."""


class RedisUrlError(ConfigurationError):
    """A Redis URL this product cannot use; the message says what to write instead."""


class EvictionPolicyError(ConfigurationError):
    """Redis's ``maxmemory-policy`` may evict keys (anything but ``noeviction``): when memory
    runs out Redis would silently drop session keys. Raised at a process's start unless
    MEOWSTIK_REDIS_ALLOW_EVICTION is set."""

    code = "redis_eviction_policy"

    def __init__(self, policy: str) -> None:
        self.policy = policy
        super().__init__(
            f"Redis's maxmemory-policy is {policy!r}, which evicts keys when memory is full: "
            "session records would silently lose keys. Set it to noeviction (CONFIG SET "
            "maxmemory-policy noeviction, and the same in redis.conf or your provider's "
            "settings); with noeviction a full Redis refuses writes instead, and the API "
            "answers 503. To run anyway, set MEOWSTIK_REDIS_ALLOW_EVICTION=true (not "
            "recommended)",
            details={"maxmemoryPolicy": policy, "setting": "MEOWSTIK_REDIS_ALLOW_EVICTION"},
        )


class AgentCatalogError(ConfigurationError):
    """An agent module could not be loaded or defines a duplicate agent id."""


class StepError(OrchestratorError):
    """Raised by agent code. Not retryable unless it is a RetryableStepError."""

    code = "step_error"


class RetryableStepError(StepError):
    code = "step_retryable_error"


class StepTimeoutError(RetryableStepError):
    """A run went past its step timeout (the step's ``timeoutS``, else its agent's, else
    MEOWSTIK_STEP_TIMEOUT_S) and was stopped: retried like any retryable failure."""

    code = "step_timeout"

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(
            f"step timed out after {timeout_s:g} s; if it needs longer, raise timeoutS on the "
            "step or its agent (or MEOWSTIK_STEP_TIMEOUT_S)",
            details={"timeoutS": timeout_s},
        )


class PermanentStepError(StepError):
    code = "step_permanent_error"


class SubPlanError(PermanentStepError):
    """A sub-plan returned by a running step cannot be scheduled; the step fails with this."""

    code = "invalid_subplan"


class ReplanLoopError(SubPlanError):
    """A step keeps re-planning: the same sub-plan again, or too many sub-plans."""

    code = "replan_loop"
