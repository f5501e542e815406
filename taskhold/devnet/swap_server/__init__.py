"""A Boltz-API-v2-compatible swap server: TEST INFRASTRUCTURE for the devnet, no real money."""
