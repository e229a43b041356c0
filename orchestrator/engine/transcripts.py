"""Steps' transcripts: what their durable tool loops recorded (orchestrator/core/transcripts.py
builds the view; orchestrator/store/turns.py holds the record)."""

from __future__ import annotations

from orchestrator.core.errors import SessionNotFoundError, StepNotFoundError
from orchestrator.core.transcripts import StepTranscript, build_transcript
from orchestrator.store.sessions import SessionStore
from orchestrator.store.turns import TurnJournal


class Transcripts:
    def __init__(self, sessions: SessionStore, journal: TurnJournal) -> None:
        self._sessions = sessions
        self._journal = journal

    def step(self, session_id: str, step_id: str) -> StepTranscript:
        """The step's transcript (empty ``agents`` when it made no model call).

        Raises:
            SessionNotFoundError, StepNotFoundError: (404).
        """
        if not self._sessions.step_record(session_id, step_id):
            known = self._sessions.step_ids(session_id)
            if not known:
                raise SessionNotFoundError(session_id)
            raise StepNotFoundError(session_id, step_id, known)
        entries = self._journal.step_entries(session_id, step_id)
        return build_transcript(session_id, step_id, entries)
