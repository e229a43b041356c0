"""The rules of a session's workspace (pure): which paths a file may have and how big it and the
workspace may grow. The store (orchestrator/store/workspace.py) applies them before writing.

A path is relative and canonical: segments of letters, digits, ``.``, ``_`` and ``-`` joined by
``/``; no leading ``/``, no ``.`` or ``..`` segment, no empty segment, no backslash, at most
MAX_PATH_CHARS characters and MAX_PATH_SEGMENTS segments. Nothing is normalised: a path that
would need it is refused, so one file never has two names.
"""

from __future__ import annotations

import re

from orchestrator.core.errors import WorkspaceError

MAX_PATH_CHARS = 256
MAX_PATH_SEGMENTS = 16
_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,128}")
_PATH_RULE = (
    "use a relative path of letters, digits, '.', '_' and '-' segments joined by '/', without "
    f"'.' or '..' segments, at most {MAX_PATH_CHARS} characters"
)


def check_path(path: object) -> str:
    """``path`` if a workspace file may have it; WorkspaceError saying why not otherwise."""
    if not isinstance(path, str) or not path:
        raise WorkspaceError(f"workspace path {path!r} is not a non-empty string; {_PATH_RULE}")
    shown = path[:80] + ("..." if len(path) > 80 else "")
    if len(path) > MAX_PATH_CHARS:
        problem = f"it is {len(path)} characters long"
    elif path.startswith("/"):
        problem = "it is absolute"
    else:
        segments = path.split("/")
        if len(segments) > MAX_PATH_SEGMENTS:
            problem = f"it has {len(segments)} segments, over {MAX_PATH_SEGMENTS}"
        elif any(segment in ("", ".", "..") for segment in segments):
            problem = "it has an empty, '.' or '..' segment"
        elif not all(_SEGMENT.fullmatch(segment) for segment in segments):
            problem = "it has a character outside letters, digits, '.', '_', '-' and '/'"
        else:
            return path
    raise WorkspaceError(
        f"workspace path {shown!r} is not allowed: {problem}; {_PATH_RULE}",
        details={"path": shown, "rule": "path"},
    )


def check_content(path: str, content: object, max_file_bytes: int) -> bytes:
    """``content`` as the UTF-8 bytes to store, if it is text within ``max_file_bytes``."""
    if not isinstance(content, str):
        raise WorkspaceError(
            f"workspace file {path!r}: content must be text, not {type(content).__name__}",
            details={"path": path, "rule": "text"},
        )
    data = content.encode("utf-8")
    if len(data) > max_file_bytes:
        raise WorkspaceError(
            f"workspace file {path!r} would be {len(data)} bytes, over the limit of "
            f"{max_file_bytes} (MEOWSTIK_WORKSPACE_MAX_FILE_BYTES); write less, or split it",
            details={"path": path, "rule": "max_file_bytes", "limitBytes": max_file_bytes},
        )
    return data


def too_many_files(path: str, max_files: int) -> WorkspaceError:
    """The error for a new file in a workspace already holding ``max_files`` files."""
    return WorkspaceError(
        f"workspace file {path!r} cannot be created: the session's workspace already holds "
        f"{max_files} files (MEOWSTIK_WORKSPACE_MAX_FILES); overwrite an existing file instead",
        details={"path": path, "rule": "max_files", "limitFiles": max_files},
    )
