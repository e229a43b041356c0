"""Request bodies taken verbatim from the spec (shared/spec/orchestration-layer.md)."""

SPEC_ORCHESTRATE_BODY = {
    "goal": "Research and implement user authentication",
    "userId": "user-123",
    "chatId": "chat-456",
    "initialContext": {"framework": "express", "database": "postgresql"},
    "metadata": {"priority": "high"},
}
