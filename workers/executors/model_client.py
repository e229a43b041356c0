"""One chat-model call to an OpenAI-compatible API (OpenAI, vLLM, Ollama, LiteLLM, llama.cpp's
server), on the official ``openai`` SDK: it builds the request, parses the JSON and the
server-sent events and classifies HTTP errors; this module adds the retry policy, the domain's
errors and the assembly of streamed replies (``model_reply.py``).

Failures map to the orchestrator's retry policy by exception type:

    ModelClient.complete
    ├── connection error, timeout, 408/409/429/5xx, an error event in a stream
    │       retried here (0.2 s doubling, or the server's Retry-After when at most 5 s), then
    │       ModelUnavailableError (a RetryableStepError; ``retry_after_s`` is the server's
    │       last wish). Not retried here: a Retry-After over 5 s (a worker slot should not
    │       sleep that long) and a stream that already handed text to ``on_delta``.
    ├── 400 whose code is context_length_exceeded (or that says so, as vLLM and llama.cpp do)
    │       ContextLengthError (a PermanentStepError: the same prompt will not fit next time)
    ├── another 4xx (a wrong key, an unknown model, a bad parameter)
    │       PermanentStepError
    ├── a reply cut at max_tokens (finish_reason "length")
    │       ReplyTruncatedError (a PermanentStepError saying to raise maxTokens)
    └── a 2xx that is not a chat completion
            PermanentStepError

Retries are ours, not the SDK's (it is built with ``max_retries=0``): one policy for HTTP agents
and models (transport.py's backoff), a sleep tests can replace, a cap on how long a worker waits
in-process, and no repeat of a stream whose text was already delivered. Nothing retries twice.

Secrets: the key and base URL are passed to the SDK explicitly, so it never reads
OPENAI_API_KEY or OPENAI_BASE_URL (it still honours OPENAI_ORG_ID, OPENAI_PROJECT_ID,
OPENAI_CUSTOM_HEADERS and OPENAI_LOG when an operator sets them). The key is sent only as the
Authorization header; messages name the endpoint without its query string and the model, and
any text echoed from the server has the key masked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import openai

from orchestrator.core.errors import (
    ContextLengthError,
    ModelUnavailableError,
    PermanentStepError,
    ReplyTruncatedError,
)
from workers.executors.model_reply import (
    TRUNCATED,
    ModelReply,
    StreamAssembly,
    tool_calls_of,
    usage_of,
)
from workers.executors.transport import MAX_BACKOFF_S, Sleep, backoff_delay_s, describe_url
from workers.tracing import model_call

DEFAULT_MAX_RETRIES = 2
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
CONTEXT_LENGTH_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
SHOWN_ERROR_CHARS = 500
MASK = "********"

Delta = Callable[[str], None]


class _Transient(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, description: str, retry_after_s: float | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after_s = retry_after_s


class ModelClient:
    """A client for one model at one OpenAI-compatible endpoint.

    Args:
        endpoint_url: the API base, e.g. ``http://127.0.0.1:11434/v1``.
        api_key: sent as a Bearer token when given; None sends no Authorization header.
        model: named in every request.
        timeout_s: bound on each attempt, the whole of a streamed reply included.
        max_retries: in-process retries after the first attempt (see the module docstring).
        endpoint_name: the configured name of the endpoint, for messages and logs.
        sleep: how to pause between attempts (tests pass a recorder).
        http_client: an httpx client to send through (tests; default: the SDK's own).
    """

    def __init__(
        self,
        endpoint_url: str,
        api_key: str | None,
        model: str,
        timeout_s: float,
        max_retries: int = DEFAULT_MAX_RETRIES,
        *,
        endpoint_name: str = "default",
        sleep: Sleep = time.sleep,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url = endpoint_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.endpoint_name = endpoint_name
        self._api_key = api_key or None
        self._sleep = sleep
        self._http_client = http_client
        self._sdk: openai.OpenAI | None = None

    def __repr__(self) -> str:
        return f"ModelClient({self.service})"

    @property
    def service(self) -> str:
        """How messages name this model: its endpoint without query string, and the model."""
        return (
            f"LLM API at {describe_url(self.base_url + '/chat/completions')} (model {self.model!r})"
        )

    def close(self) -> None:
        """Release the connection pool; a later call opens a new one."""
        if self._sdk is not None:
            self._sdk.close()
            self._sdk = None

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        response_format: dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stream: bool = False,
        on_delta: Delta | None = None,
    ) -> ModelReply:
        """The model's reply to ``messages``: its first choice, tool calls and usage.

        With ``stream``, the reply is read as server-sent events (usage asked for with
        ``stream_options.include_usage``) and ``on_delta`` gets each piece of text as it arrives.

        Raises:
            ModelUnavailableError: every attempt failed transiently.
            ContextLengthError: the prompt does not fit the model's context window.
            ReplyTruncatedError: the reply hit ``max_tokens``.
            PermanentStepError: another 4xx, or a reply that is not a chat completion.
        """
        arguments: dict[str, Any] = {"model": self.model, "messages": messages}
        optional = {
            "tools": tools,
            "tool_choice": tool_choice,
            "response_format": response_format,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        arguments.update({name: value for name, value in optional.items() if value is not None})
        if stream:
            arguments.update(stream=True, stream_options={"include_usage": True})
        if self._api_key is None:  # the SDK insists on a key: say there is none on purpose
            arguments["extra_headers"] = {"Authorization": openai.Omit()}
        traced = model_call(
            self.base_url,
            self.model,
            endpoint_name=self.endpoint_name,
            stream=stream,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        with traced as call:
            trace_headers = call.traced.headers()  # the server may join the trace (vLLM does)
            if trace_headers:
                arguments["extra_headers"] = {**arguments.get("extra_headers", {}), **trace_headers}
            reply = self._complete(arguments, stream, on_delta)
            call.reply(reply)
            return reply

    def _complete(
        self, arguments: dict[str, Any], stream: bool, on_delta: Delta | None
    ) -> ModelReply:
        """``complete``'s attempts: retried as the module docstring says."""
        failures: list[_Transient] = []
        for retry in range(self.max_retries + 1):
            delivered: list[str] = []
            try:
                return self._checked(self._attempt(arguments, stream, on_delta, delivered))
            except _Transient as failure:
                failures.append(failure)
                wait_s = failure.retry_after_s
                if retry == self.max_retries or delivered or (wait_s or 0) > MAX_BACKOFF_S:
                    break
                self._sleep(backoff_delay_s(retry) if wait_s is None else wait_s)
        raise self._unavailable(failures)

    def _client(self) -> openai.OpenAI:
        if self._sdk is None:
            self._sdk = openai.OpenAI(
                api_key=self._api_key or _no_key,
                base_url=self.base_url,
                timeout=self.timeout_s,
                max_retries=0,
                http_client=self._http_client,
            )
        return self._sdk

    def _attempt(
        self, arguments: dict[str, Any], stream: bool, on_delta: Delta | None, delivered: list[str]
    ) -> ModelReply:
        """One request, its errors mapped: _Transient to retry, PermanentStepError to stop."""
        try:
            if stream:
                return self._stream(arguments, on_delta, delivered)
            return self._reply_of(self._client().chat.completions.create(**arguments))
        except openai.APIStatusError as exc:
            raise self._status_failure(exc) from exc
        except openai.APITimeoutError as exc:
            raise _Transient(f"timed out after {self.timeout_s} s") from exc
        except openai.APIConnectionError as exc:
            raise _Transient(self._mask(_cause(exc))) from exc
        except openai.APIResponseValidationError as exc:
            raise self._malformed(str(exc)) from exc
        except openai.APIError as exc:  # an error event inside a stream
            raise _Transient(f"error event in the stream: {self._mask(exc.message)!r}") from exc
        except httpx.TimeoutException as exc:  # while reading a stream
            raise _Transient(f"timed out reading the stream ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {self._mask(str(exc))}") from exc
        except ValueError as exc:  # a chunk that is not JSON
            raise self._malformed(f"a body or event that is not JSON ({exc})") from exc

    def _stream(
        self, arguments: dict[str, Any], on_delta: Delta | None, delivered: list[str]
    ) -> ModelReply:
        deadline = time.monotonic() + self.timeout_s
        assembly = StreamAssembly(self.model)
        with self._client().chat.completions.create(**arguments) as chunks:
            for chunk in chunks:
                fragment = assembly.add(chunk)
                if fragment:
                    delivered.append(fragment)
                    if on_delta is not None:
                        on_delta(fragment)
                if time.monotonic() > deadline:
                    raise _Transient(f"the stream took longer than {self.timeout_s} s")
        if assembly.chunks == 0:
            raise self._malformed(
                "an empty stream (no event at all; llama-cpp-python's server, for one, ends a "
                "stream so when the prompt is longer than the model's context window)"
            )
        return assembly.reply()

    def _reply_of(self, completion: Any) -> ModelReply:
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list) or not choices:
            choices = [None]
        message = getattr(choices[0], "message", None)
        if message is None:
            start = _start_of(completion)
            raise self._malformed(
                f"a reply without choices[0].message.content (reply starts {start!r})",
                reply=start,
            )
        content = getattr(message, "content", None)
        if content is not None and not isinstance(content, str):
            raise self._malformed(f"message content of type {type(content).__name__}, not text")
        return ModelReply(
            content=content,
            tool_calls=tool_calls_of(getattr(message, "tool_calls", None)),
            finish_reason=getattr(choices[0], "finish_reason", None),
            usage=usage_of(getattr(completion, "usage", None)),
            model=getattr(completion, "model", None) or self.model,
        )

    def _checked(self, reply: ModelReply) -> ModelReply:
        if reply.finish_reason == TRUNCATED:
            raise ReplyTruncatedError(
                f"{self.service} stopped its reply at the token limit (finish_reason 'length'), "
                "so the reply is incomplete. Raise the agent's maxTokens, ask for a shorter "
                "answer in its systemPrompt, or use a model with a larger limit.",
                details=self._details(finishReason=TRUNCATED, usage=_usage_details(reply)),
            )
        return reply

    def _status_failure(self, exc: openai.APIStatusError) -> Exception:
        status = exc.status_code
        error = exc.body if isinstance(exc.body, Mapping) else {}
        text = self._mask(str(error.get("message") or exc.body or exc.message))
        text = text[:SHOWN_ERROR_CHARS]
        code = error.get("code")
        if status in RETRYABLE_STATUSES or status >= 500:
            return _Transient(f"HTTP {status}: {text!r}", retry_after_s(exc.response.headers))
        details = self._details(status=status, code=code, error=text)
        if status == 400 and _is_context_length(code, error.get("type"), text):
            return ContextLengthError(
                f"{self.service}: the prompt is too long for the model's context window "
                f"({text!r}). Retrying would not help: shorten the step's input (fewer or "
                "smaller dependencies and context) or use a model with a larger window.",
                details=details,
            )
        hint = _HINTS.get(status, "check the request the model's API expects")
        return PermanentStepError(
            f"{self.service} rejected the request with HTTP {status}: {text!r}. Retrying would "
            f"not help; {hint}.",
            details=details,
        )

    def _unavailable(self, failures: list[_Transient]) -> ModelUnavailableError:
        last = failures[-1]
        return ModelUnavailableError(
            f"{self.service} failed {len(failures)} time(s); last: {last.description}. It may "
            "be down, overloaded or rate limiting; the orchestrator retries the step or falls "
            "back to another agent.",
            retry_after_s=last.retry_after_s,
            details=self._details(
                attempts=len(failures),
                errors=[failure.description for failure in failures],
                retryAfterS=last.retry_after_s,
            ),
        )

    def _malformed(self, what: str, **details: Any) -> PermanentStepError:
        return PermanentStepError(
            f"{self.service} answered with {self._mask(what)}. Check that the endpoint is an "
            "OpenAI-compatible API (its base URL usually ends in /v1).",
            details=self._details(**details),
        )

    def _details(self, **extra: Any) -> dict[str, Any]:
        return {
            "endpoint": describe_url(self.base_url),
            "endpointName": self.endpoint_name,
            "model": self.model,
            **{name: value for name, value in extra.items() if value is not None},
        }

    def _mask(self, text: str) -> str:
        return text.replace(self._api_key, MASK) if self._api_key else text


_HINTS = {
    401: "check the API key (MEOWSTIK_LLM_API_KEY or the endpoint's apiKey)",
    403: "the key may not use this model or endpoint",
    404: "check the model name and that the base URL ends in /v1",
}


def _no_key() -> str:
    """The SDK's key provider when the endpoint needs none (Ollama, vLLM without --api-key)."""
    return ""


def retry_after_s(headers: httpx.Headers) -> float | None:
    """The server's wish in seconds: ``retry-after-ms``, else ``Retry-After`` in seconds (an
    HTTP date counts as no wish); None when absent, negative or not a number."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(name, "")) / scale
        except ValueError:
            continue
        if seconds >= 0 and seconds != float("inf"):
            return seconds
    return None


def _is_context_length(code: Any, kind: Any, text: str) -> bool:
    lowered = text.lower()
    return (
        code in CONTEXT_LENGTH_CODES
        or kind in CONTEXT_LENGTH_CODES
        or "maximum context length" in lowered
        or "context size" in lowered
    )


def _cause(exc: Exception) -> str:
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {cause}"


def _start_of(completion: Any) -> str:
    dump = getattr(completion, "model_dump_json", None)
    text = dump() if callable(dump) else repr(completion)
    return str(text)[:200]


def _usage_details(reply: ModelReply) -> dict[str, int] | None:
    return reply.usage.as_log_data() if reply.usage else None
