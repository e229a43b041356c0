"""Server-Sent Events on the client side: the parser and line splitting are the SDK's
(meowstik/sse.py); here, reading a streamed ``requests`` body as its bytes arrive. No knowledge
of the API here: ``ApiClient.follow_events`` opens, resumes and ends the streams.
"""

from __future__ import annotations

from collections.abc import Iterator

import requests

from meowstik.sse import SseEvent, SseParser, split_lines

__all__ = ["READ_SIZE", "SseEvent", "SseParser", "arriving_bytes", "split_lines"]

READ_SIZE = 8192


def arriving_bytes(response: requests.Response) -> Iterator[bytes]:
    """A streamed body as its bytes arrive. ``iter_content`` does that for chunked bodies (what
    the API sends), but on a body delimited by closing the connection it waits for ``chunk_size``
    bytes, or the end, before yielding; ``read1`` returns what one read brings."""
    if response.raw.chunked:
        return response.iter_content(chunk_size=None)
    return iter(lambda: response.raw.read1(READ_SIZE), b"")
