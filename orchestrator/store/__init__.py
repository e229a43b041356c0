"""Redis behind a few small store classes. Every key name comes from ``keys.py``.

The same classes run against a real Redis server and against fakeredis (with Lua) in the fast
unit tests: one storage contract, two backends (tests/unit/test_store_contract.py).
"""
