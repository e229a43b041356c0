"""Request bodies taken verbatim from the spec (shared/spec/orchestration-layer.md)."""

SPEC_ORCHESTRATE_BODY = {
    "goal": "Research and implement user authentication",
    "userId": "user-123",
    "chatId": "chat-456",
    "initialContext": {"framework": "express", "database": "postgresql"},
    "metadata": {"priority": "high"},
}

SPEC_CUSTOM_AGENT_BODY = {
    "id": "custom-agent-001",
    "name": "Custom Specialist",
    "type": "specialist",
    "description": "Custom specialized agent",
    "capabilities": [
        {
            "name": "custom_capability",
            "description": "Perform custom operations",
            "domains": ["custom"],
            "tools": ["custom_tool"],
        }
    ],
    "priority": 5,
    "status": "active",
    "currentLoad": 0,
    "maxLoad": 3,
}
