"""Checking workers' proofs against the task's acceptance spec."""

from .spec import AcceptanceSpec, check_proof, parse_spec

__all__ = ["AcceptanceSpec", "check_proof", "parse_spec"]
