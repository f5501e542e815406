"""Default Nostr event kinds for taskhold's log (DESIGN.md section 5).

Kinds are settings: these constants are only the defaults the settings start from, so code that
builds or checks events takes the kind from configuration rather than from here.
"""

from __future__ import annotations

__all__ = ["KIND_LOG_ENTRY", "KIND_PROOF", "KIND_REQUEST", "KIND_WEBHOOK_DELIVERY"]

KIND_LOG_ENTRY = 3910
"""An operator-signed log entry, one per task transition."""

KIND_PROOF = 3911
"""A worker-signed proof submission."""

KIND_REQUEST = 3912
"""A participant-signed request (create, fund, claim, approve, dispute, ...)."""

KIND_WEBHOOK_DELIVERY = 3915
"""An operator-signed webhook delivery carrying one log entry; POSTed, never published."""
