"""Request bodies taken verbatim from the spec (shared/spec/orchestration-layer.md)."""

SPEC_ORCHESTRATE_BODY = {
    "goal": "Research and implement user authentication",
    "userId": "user-123",
    "chatId": "chat-456",
    "initialContext": {"framework": "express", "database": "postgresql"},
    "metadata": {"priority": "high"},
}

SPEC_CUSTOM_AGENT_REST_EXAMPLE = {
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

# The REST example verbatim: its tool "custom_tool" is registered nowhere, so it registers with
# missingTools ["custom_tool"] (or is refused with MEOWSTIK_REQUIRE_REGISTERED_TOOLS=true).
SPEC_CUSTOM_AGENT_BODY = SPEC_CUSTOM_AGENT_REST_EXAMPLE

SPEC_SECURITY_SCANNER_BODY = {  # the spec's "Custom Agent Registration" (TypeScript) as JSON
    "id": "security-scanner-001",
    "name": "Security Scanner",
    "type": "specialist",
    "description": "Scans code for security vulnerabilities",
    "capabilities": [
        {
            "name": "security_analysis",
            "description": "Analyze code for security issues",
            "domains": ["security", "code"],
            "tools": ["file_get", "github_code_search"],
        }
    ],
    "priority": 10,
    "status": "active",
    "currentLoad": 0,
    "maxLoad": 2,
    "metadata": {"supportedLanguages": ["javascript", "python", "go"]},
}
