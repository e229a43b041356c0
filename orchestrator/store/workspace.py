"""A session's workspace in Redis: text files by relative path, in one hash per session
(``Keys.workspace``), which retention expires with the rest of the session. The workspace tools
(orchestrator/core/builtin_tools.py) reach it as ``step_input.workspace``.

Paths and sizes follow orchestrator/core/workspace.py; a write is one script
(``workspace_write.lua``) that also checks the session still runs and the file count, so two
steps writing at once cannot pass MEOWSTIK_WORKSPACE_MAX_FILES together.
"""

from __future__ import annotations

import redis

from orchestrator.core.errors import SessionFinishedError, SessionNotFoundError
from orchestrator.core.workspace import check_content, check_path, too_many_files
from orchestrator.store.errors import translates_redis_errors
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import Scripts, text

DEFAULT_MAX_FILE_BYTES = 256 * 1024
DEFAULT_MAX_FILES = 100


@translates_redis_errors
class WorkspaceStore:
    """Reads and writes the workspaces of every session over one client."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
    ) -> None:
        self._client, self._keys = client, keys
        self._scripts = Scripts(client)
        self.max_file_bytes, self.max_files = max_file_bytes, max_files

    def read(self, session_id: str, path: str) -> str | None:
        """The file's text, or None when the workspace has no such file."""
        raw = self._client.hget(self._keys.workspace(session_id), check_path(path))
        return None if raw is None else text(raw)

    def write(self, session_id: str, path: str, content: str) -> int:
        """Create or replace a file; returns its size in bytes.

        Raises:
            WorkspaceError: a bad path, a file over ``max_file_bytes``, or a new file in a
                workspace already holding ``max_files``.
            SessionNotFoundError (404), SessionFinishedError (409): no running session.
        """
        data = check_content(check_path(path), content, self.max_file_bytes)
        k = self._keys
        reply = self._scripts["workspace_write"](
            keys=[k.session(session_id), k.workspace(session_id)],
            args=[path, data, self.max_files],
        )
        code = text(reply[0])
        if code == "ended":
            if text(reply[1]) == "missing":
                raise SessionNotFoundError(session_id)
            raise SessionFinishedError(session_id, text(reply[1]))
        if code == "full":
            raise too_many_files(path, self.max_files)
        return len(data)

    def list(self, session_id: str) -> dict[str, int]:
        """Every file's size in bytes, by path."""
        key = self._keys.workspace(session_id)
        paths = [text(raw) for raw in self._client.hkeys(key)]
        if not paths:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for path in paths:
            pipe.hstrlen(key, path)
        return dict(zip(paths, map(int, pipe.execute()), strict=True))

    def bound(self, session_id: str) -> SessionWorkspace:
        """This store seen from one session: what ``step_input.workspace`` is."""
        return SessionWorkspace(self, session_id)


class SessionWorkspace:
    """One session's workspace (``orchestrator.core.steps.WorkspaceView``)."""

    def __init__(self, store: WorkspaceStore, session_id: str) -> None:
        self._store, self._session_id = store, session_id

    def read(self, path: str) -> str | None:
        return self._store.read(self._session_id, path)

    def write(self, path: str, content: str) -> int:
        return self._store.write(self._session_id, path, content)

    def list(self) -> dict[str, int]:
        return self._store.list(self._session_id)
