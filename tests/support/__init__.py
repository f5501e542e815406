"""What many test modules share: stacks, task flows, relays, the devnet, the crash harness."""
