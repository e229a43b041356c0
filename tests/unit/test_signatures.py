"""Signed requests (issue 22): the X-Meowstik-Signature scheme checked against a hand-computed
HMAC; what verify_signature refuses (another body, secret, an old timestamp, a malformed or
missing header); rotation; and an HTTP agent verifying the calls it gets with the SDK's helper."""

import hashlib
import hmac

import pytest

from meowstik import SIGNATURE_HEADER, sign, verify_signature
from orchestrator.core.errors import RetryableStepError
from tests.unit.test_executors import STEP_INPUT, Scripted, http_agent, server  # noqa: F401

BODY = b'{"sessionId":"orch-1-a","status":"completed"}'


def test_the_signature_is_the_hmac_of_the_timestamp_and_body():
    header = sign("s3cret", BODY, timestamp=1_800_000_000)
    expected = hmac.new(b"s3cret", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={expected}"
    assert verify_signature(BODY, header, "s3cret", now=1_800_000_010)
    assert verify_signature(BODY.decode(), header, ["old", "s3cret"], now=1_800_000_010)


@pytest.mark.parametrize(
    "body, header, secret, now",
    [
        (BODY + b" ", None, "s3cret", 1_800_000_000),  # another body
        (BODY, None, "other", 1_800_000_000),  # another secret
        (BODY, None, "s3cret", 1_800_000_301),  # older than the tolerance (300 s)
        (BODY, None, "s3cret", 1_799_999_699),  # from the future, beyond it
        (BODY, "", "s3cret", 1_800_000_000),  # missing
        (BODY, "v1=abc", "s3cret", 1_800_000_000),  # no timestamp
        (BODY, "t=1800000000", "s3cret", 1_800_000_000),  # no signature
        (BODY, "t=soon,v1=abc", "s3cret", 1_800_000_000),  # malformed timestamp
    ],
)
def test_verify_refuses_what_was_not_signed_so(body, header, secret, now):
    signed = sign("s3cret", BODY, timestamp=1_800_000_000) if header is None else header
    assert not verify_signature(body, signed, secret, now=now)


def test_rotation_signs_with_every_secret_and_either_verifies():
    header = sign(["new", "old"], BODY, timestamp=1_800_000_000)
    assert header.count("v1=") == 2
    for secret in ("new", "old"):
        assert verify_signature(BODY, header, secret, now=1_800_000_000)


def test_an_http_agent_verifies_its_calls_with_the_sdk_helper(server):  # noqa: F811
    server.answer(Scripted(body={"output": "signed"}))
    agent = http_agent(server, [], signing_secrets="agent-secret-1")
    assert agent.run(STEP_INPUT).output == "signed"
    [request] = server.requests
    header = request.headers[SIGNATURE_HEADER]
    assert verify_signature(request.body, header, "agent-secret-1")
    assert not verify_signature(request.body, header, "someone-else")
    # each attempt is signed afresh (a retry after a 503 carries its own valid signature)
    server.answer(Scripted(status=503, body=b"busy"), Scripted(body={"output": "late"}))
    assert agent.run(STEP_INPUT).output == "late"
    for retried in server.requests[1:]:
        assert verify_signature(retried.body, retried.headers[SIGNATURE_HEADER], "agent-secret-1")


def test_without_secrets_calls_are_unsigned(server):  # noqa: F811
    agent = http_agent(server, [])
    agent.run(STEP_INPUT)
    assert SIGNATURE_HEADER not in server.requests[0].headers
    server.answer(Scripted(status=401, body={"error": "bad signature"}))
    with pytest.raises(Exception) as caught:
        agent.run(STEP_INPUT)
    assert not isinstance(caught.value, RetryableStepError)  # a 401 is not retried
