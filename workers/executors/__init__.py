"""Executors for agents that run outside worker code: HTTP endpoints and OpenAI-compatible LLMs.

Both are plain ``Agent`` subclasses built from a registry record and the settings, so the worker
runs them like any hosted agent (see ``workers.runtime.build_remote_agent``).
"""

from workers.executors.http_agent import HttpAgent
from workers.executors.llm import ChatClient, LlmAgent, llm_available

__all__ = ["ChatClient", "HttpAgent", "LlmAgent", "llm_available"]
