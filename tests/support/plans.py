"""Building explicit plans in tests."""


def step(step_id: str, capability: str, *deps: str, **parameters) -> dict:
    """One plan step in the API's JSON shape; ``parameters`` reach the agent."""
    return {
        "id": step_id,
        "title": step_id,
        "requiredCapabilities": [capability],
        "dependsOn": list(deps),
        "parameters": parameters,
    }
