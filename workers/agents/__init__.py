"""Agents: the base class, the built-in offline fleet, and discovery of user agents."""
