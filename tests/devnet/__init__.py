"""End-to-end tests on the regtest Lightning network.

A package, so that its conftest is not imported as ``conftest`` and does not shadow
``tests/conftest.py``.
"""
