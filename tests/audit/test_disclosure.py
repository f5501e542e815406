"""The arbiter's disclosure check, ``taskhold disclosure``: the employer discloses a private
task's details payload; it matches the ``details_hash`` the log published, read from a relay,
and the same payload tampered with does not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from support.stacks import Stack
from support.task_flows import funded, read_log
from test_fetch_cli import publish, start_relay
from typer.testing import CliRunner

from taskhold.audit.disclosure import check_disclosure_in_log
from taskhold.cli import cli
from taskhold.nostr import NostrKeys
from taskhold.nostr.confidential import open_sealed

__all__ = ["start_relay"]  # the fixture, imported to be found by pytest


async def _disclose(stack: Stack) -> tuple[str, str, list[dict[str, object]]]:
    """A private task; returns its id, the employer's disclosed payload and the log."""
    keys = NostrKeys.generate()
    employer = stack.client(keys)
    task = await funded(stack, employer, description="ship 3 crates to Ghent", private=True)
    copy = task["details_sealed"][keys.pubkey_hex]
    payload = open_sealed(keys, copy["sender"], copy["ciphertext"])
    return task["task_id"], payload, await read_log(stack)


async def test_a_disclosure_is_checked_against_the_log(stack: Stack) -> None:
    task_id, payload, log = await _disclose(stack)
    operator = stack.services.signer.get_public_key()

    verdict = check_disclosure_in_log(log, [operator], task_id, "details", payload)
    assert verdict.matches and verdict.entry_id == log[0]["id"]
    tampered = payload.replace("3 crates", "4 crates")
    assert not check_disclosure_in_log(log, [operator], task_id, "details", tampered).matches
    forged = check_disclosure_in_log(log, ["ab" * 32], task_id, "details", payload)
    assert forged.commitment is None and not forged.matches, "only the operator's entries count"


async def test_the_cli_reads_the_commitment_from_a_relay(
    stack: Stack, start_relay: Callable[[], str], tmp_path: Path
) -> None:
    task_id, payload, log = await _disclose(stack)
    url = start_relay()
    await publish(url, log)
    operator = stack.services.signer.get_public_key()
    genuine, tampered = tmp_path / "genuine.json", tmp_path / "tampered.json"
    genuine.write_text(payload)
    tampered.write_text(payload.replace("Ghent", "Bruges"))

    async def check(path: Path) -> tuple[int, dict[str, object]]:
        args = ["disclosure", "--relay", url, "--operator", operator, "--task", task_id]
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, [*args, "--payload", str(path), "--json"]
        )
        return result.exit_code, json.loads(result.stdout)

    code, answer = await check(genuine)
    assert (code, answer["matches"], answer["entry_id"]) == (0, True, log[0]["id"])
    code, answer = await check(tampered)
    assert (code, answer["matches"]) == (1, False)


async def test_a_replaced_proof_is_checked_against_its_own_commitment(stack: Stack) -> None:
    """Rejected, the worker sends a second proof; the dispute may be about the first. Each
    disclosed proof matches the entry that committed to it; a tampered one matches none."""
    employer_keys = NostrKeys.generate()
    employer, worker = stack.client(employer_keys), stack.client()
    task = await funded(stack, employer, description="private", private=True)
    task_id = task["task_id"]
    await worker.claim(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    payloads = []
    for url in ("https://example.org/first", "https://example.org/second"):
        proven = await worker.submit_proof(task_id, {"url": url}, invoice)
        copy = proven["proof_sealed"][employer_keys.pubkey_hex]
        payloads.append(open_sealed(employer_keys, copy["sender"], copy["ciphertext"]))
        if len(payloads) == 1:
            await employer.reject(task_id, "not yet")
    log = await read_log(stack)
    operator = stack.services.signer.get_public_key()
    proofs = [e["id"] for e in log if ["op", "ProofSubmitted"] in e["tags"]]
    assert len(proofs) == 2

    for payload, entry_id in zip(payloads, proofs, strict=True):
        verdict = check_disclosure_in_log(log, [operator], task_id, "proof", payload)
        assert verdict.matches and verdict.entry_id == entry_id
    tampered = payloads[0].replace("first", "third")
    verdict = check_disclosure_in_log(log, [operator], task_id, "proof", tampered)
    assert not verdict.matches and verdict.entry_id == proofs[-1]
