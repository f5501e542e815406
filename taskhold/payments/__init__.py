"""Paying workers: invoice checks and the idempotent payout."""
