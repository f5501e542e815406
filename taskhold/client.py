"""An async Python client for taskhold's REST API, used by the demo, the API tests and the README.

Every write is a Nostr event signed with the caller's key: content is the compact JSON of the
request body, and the ``op`` and ``task`` tags bind the signature to one operation on one task, so
the server can embed the event in the public log as proof of who asked for what. A write that hits
a transport error is retried with the same event and the same ``Idempotency-Key``: the server then
either does it once or returns the first answer, so a retry can never act twice. The retries span
about 12 s by default, longer than a server restart; a caller who retries later with the same
``idempotency_key`` is sent the very event signed the first time, so it gets the first answer too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from taskhold.errors import Invalid
from taskhold.nostr import KIND_PROOF, KIND_REQUEST, NostrKeys
from taskhold.nostr.confidential import (
    SealedContentError,
    check_disclosure,
    commitment,
    make_payload,
    open_sealed,
    payload_body,
    seal,
)
from taskhold.nostr.follow import Selection, Transition, follow_log
from taskhold.nostr.kinds import KIND_WEBHOOK_DELIVERY
from taskhold.nostr.relays import RelayPool
from taskhold.nostr.remote_signer import RemoteSigner, RemoteSignerError
from taskhold.nostr.webhook_delivery import verify_delivery
from taskhold.payments.invoices import decode_invoice
from taskhold.tasks.rounds import RENEWABLE_STATES

__all__ = ["TaskholdAPIError", "TaskholdClient", "payout_terms", "verify_webhook"]

_RENEWABLE_STATES = frozenset({"PENDING_FUNDING", *(state.value for state in RENEWABLE_STATES)})
"""States in which a task may still be renewed, or (pending funding) is yet to be held."""


class TaskholdAPIError(Exception):
    """The server refused a request: ``code`` is the stable problem+json code to branch on.

    ``problem`` is the whole problem+json body (e.g. ``required_bits`` for ``pow_required``);
    ``retry_after_s`` is the ``Retry-After`` of a 429.
    """

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        problem: dict[str, Any] | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail or title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.problem = problem or {}
        self.retry_after_s = retry_after_s


class TaskholdClient:
    """One participant talking to one taskhold server. Use as ``async with``.

    An ``http`` client passed in is borrowed and left open; one created here is closed by
    :meth:`aclose`.

    Proof of work (NIP-13): writes are mined to ``pow_difficulty`` bits; with ``auto_pow`` a
    write refused with ``pow_required`` is signed again with the difficulty the server named
    (up to ``max_pow_bits``) and sent once more, and later writes keep that difficulty.

    Transport errors are retried ``retries`` times, waiting ``retry_delay_s`` and doubling up to
    ``max_retry_delay_s`` (0.25, 0.5, 1, then 2 s five times: about 12 s, longer than a restart).
    The event signed for a caller's ``idempotency_key`` is kept (the last ``remembered_keys``),
    so calling the same method again with the same key and body resends it unchanged.

    ``keys`` is the caller's key pair, or a NIP-46 :class:`RemoteSigner`: every write is then
    signed in the remote signer (and checked before it is sent). Sealing and opening private
    content need the key itself; with a remote signer they are refused (RemoteSignerError).
    """

    def __init__(
        self,
        base_url: str,
        keys: NostrKeys | RemoteSigner,
        *,
        http: httpx.AsyncClient | None = None,
        request_kind: int = KIND_REQUEST,
        proof_kind: int = KIND_PROOF,
        retries: int = 8,
        retry_delay_s: float = 0.25,
        max_retry_delay_s: float = 2.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        remembered_keys: int = 1024,
        pow_difficulty: int = 0,
        auto_pow: bool = True,
        max_pow_bits: int = 24,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._keys = keys
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=30.0)
        self._request_kind = request_kind
        self._proof_kind = proof_kind
        self._retries = retries
        self._retry_delay_s = retry_delay_s
        self._max_retry_delay_s = max_retry_delay_s
        self._clock = clock
        self._sleep = sleep
        self._remembered_keys = remembered_keys
        self._signed_by_key: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        """Caller's idempotency key -> (what was asked, the event signed for it)."""
        self.pow_difficulty = pow_difficulty
        self._auto_pow = auto_pow
        self._max_pow_bits = max_pow_bits

    @property
    def base_url(self) -> str:
        """The server this client talks to."""
        return self._base_url

    @property
    def pubkey_hex(self) -> str:
        """The pubkey this client signs with: how the server knows who is asking."""
        return self._keys.pubkey_hex

    @property
    def npub(self) -> str:
        """The same key in NIP-19 ``npub1…`` form, for people."""
        return self._keys.npub

    async def __aenter__(self) -> TaskholdClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # Signed writes -------------------------------------------------------------------------

    async def create_task(
        self,
        title: str,
        description: str,
        amount_msat: int,
        deadline_at: int,
        *,
        acceptance: dict[str, Any] | None = None,
        review_window_s: int | None = None,
        dispute_window_s: int | None = None,
        deposit: bool = False,
        claim_mode: str | None = None,
        direct_worker: str | None = None,
        claim_timeout_s: int | None = None,
        idempotency_key: str | None = None,
        private: bool = False,
    ) -> dict[str, Any]:
        """Post a task as its employer; returns the task (``task_id``, ``state``, ...).

        ``deposit``: lock a deposit (``lock_deposit``, before funding) instead of mining proof
        of work for this task's requests. ``private``: the description is sealed to the
        employer, the operator, every arbiter (and ``direct_worker``) instead of sent in the
        clear; the public log carries only its hash (``open_details`` reads it back)."""
        body: dict[str, Any] = {
            "title": title,
            "description": description,
            "amount_msat": amount_msat,
            "deadline_at": deadline_at,
            "acceptance": acceptance,
            "review_window_s": review_window_s,
            "dispute_window_s": dispute_window_s,
            "deposit": deposit or None,
            "claim_mode": claim_mode,
            "direct_worker": direct_worker,
            "claim_timeout_s": claim_timeout_s,
        }
        body = {key: value for key, value in body.items() if value is not None}
        clear = _when_sealed(dict(body), private)
        if private:
            del body["description"]
            body.update(await self._sealed_details(description, direct_worker))
        return await self._signed("/v1/tasks", "create", None, body, idempotency_key, clear=clear)

    async def _sealed_details(self, description: str, direct_worker: str | None) -> dict[str, Any]:
        """``visibility``, ``details_hash`` and ``details_sealed`` for a private create."""
        extra = [] if direct_worker is None else [direct_worker]
        details = {"description": description}
        details_hash, details_sealed = await self._sealed(details, self.pubkey_hex, *extra)
        return {
            "visibility": "private",
            "details_hash": details_hash,
            "details_sealed": details_sealed,
        }

    async def _sealed_proof(self, proof: dict[str, Any], employer: str) -> dict[str, Any]:
        """``proof_hash`` and ``proof_sealed`` for a sealed proof (this key keeps a copy)."""
        proof_hash, proof_sealed = await self._sealed(proof, employer, self.pubkey_hex)
        return {"proof_hash": proof_hash, "proof_sealed": proof_sealed}

    async def _sealed(self, body: Any, first: str, *others: str) -> tuple[str, dict[str, str]]:
        """``body``'s commitment and its sealed copies for ``first``, the operator, every
        arbiter and ``others`` (the operator and arbiters as ``/v1/info`` names them)."""
        info = await self.info()
        recipients = [first, info["operator_pubkey"], *info["arbiters"], *others]
        payload = make_payload(body)
        return commitment(payload), seal(self._own_keys(), recipients, payload)

    async def _sealing(self, task_id: str, seal_invoice: bool | None) -> bool:
        """Whether to seal an invoice: as asked, else when the task is private."""
        if seal_invoice is not None:
            return seal_invoice
        return bool((await self.get_task(task_id)).get("visibility") == "private")

    async def _invoice_fields(self, field: str, invoice: str, sealing: bool) -> dict[str, Any]:
        """``field`` (or ``<field>_sealed``: the invoice sealed to the operator key) and the
        ``payout_hash``/``payout_msat`` signed in clear with it."""
        if not sealing:
            return {field: invoice, **payout_terms(invoice)}
        operator = (await self.info())["operator_pubkey"]
        sealed = seal(self._own_keys(), [operator], invoice)[operator]
        return {f"{field}_sealed": sealed, **payout_terms(invoice)}

    def open_proof(self, task: dict[str, Any]) -> dict[str, Any] | None:
        """A task's current sealed proof, opened with this client's key and checked against
        ``proof_hash``; None when the proof was not sealed or this key has no copy."""
        proof: dict[str, Any] | None = self._open_copy(task.get("proof_sealed", {}), task, "proof")
        return proof

    def open_details(self, task: dict[str, Any]) -> str | None:
        """A private task's description, opened with this client's key from its sealed copy
        and checked against ``details_hash``; None when this key has no copy. A public task's
        description is returned as is."""
        if task.get("visibility", "public") != "private":
            return str(task["description"])
        body = self._open_copy(task["details_sealed"], task, "details")
        return None if body is None else str(body["description"])

    def _open_copy(self, sealed: dict[str, Any], task: dict[str, Any], name: str) -> Any:
        """The body of this key's copy in ``sealed``, checked against the task's ``<name>_hash``
        (``SealedContentError`` if it does not match); None when this key has no copy."""
        copy = sealed.get(self.pubkey_hex)
        if copy is None:
            return None
        payload = open_sealed(self._own_keys(), copy["sender"], copy["ciphertext"])
        if not check_disclosure(payload, task[f"{name}_hash"]):
            raise SealedContentError(f"the sealed {name} does not match {name}_hash")
        return payload_body(payload)

    async def create_milestones(
        self,
        milestones: list[dict[str, Any]],
        *,
        funding_mode: str,
        review_window_s: int | None = None,
        dispute_window_s: int | None = None,
        claim_mode: str | None = None,
        direct_worker: str | None = None,
        claim_timeout_s: int | None = None,
        same_worker: bool | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Post an ordered series of milestones (each ``title``, ``amount_msat``,
        ``deadline_at``, optionally ``description`` and ``acceptance``), one task each, funded
        ``upfront`` or ``sequential``. Returns the first milestone; its ``milestones`` member
        lists them all, with the hold invoices issued so far."""
        body: dict[str, Any] = {
            "milestones": milestones,
            "funding_mode": funding_mode,
            "review_window_s": review_window_s,
            "dispute_window_s": dispute_window_s,
            "claim_mode": claim_mode,
            "direct_worker": direct_worker,
            "claim_timeout_s": claim_timeout_s,
            "same_worker": same_worker,
        }
        body = {key: value for key, value in body.items() if value is not None}
        return await self._signed("/v1/tasks", "create", None, body, idempotency_key)

    async def get_series(self, series_id: str) -> dict[str, Any]:
        """A milestone series (``series_id`` is its first milestone's task id), in order."""
        return await self._read(f"/v1/series/{quote(series_id, safe='')}")

    async def request_funding(
        self, task_id: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Ask for the hold invoice to pay; the answer holds ``funding.payment_request``."""
        return await self._task_write(task_id, "funding", "fund", {}, idempotency_key)

    async def claim(self, task_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return await self._task_write(task_id, "claim", "claim", {}, idempotency_key)

    async def apply(
        self, task_id: str, note: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Apply to a task in claim mode ``apply``; the employer may then assign this key."""
        return await self._task_write(task_id, "apply", "apply", {"note": note}, idempotency_key)

    async def assign(
        self, task_id: str, worker_pubkey: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """As the employer: make one applicant the task's worker."""
        body = {"worker_pubkey": worker_pubkey}
        return await self._task_write(task_id, "assign", "assign", body, idempotency_key)

    async def unclaim(self, task_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """As the worker: give the task back before sending a proof."""
        return await self._task_write(task_id, "unclaim", "unclaim", {}, idempotency_key)

    async def revoke(
        self, task_id: str, reason: str = "", *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """As the employer: revoke a claim whose timeout passed without a proof."""
        body = {"reason": reason}
        return await self._task_write(task_id, "revoke", "revoke", body, idempotency_key)

    async def submit_proof(
        self,
        task_id: str,
        proof: dict[str, Any],
        payout_invoice: str,
        *,
        head: str | None = None,
        idempotency_key: str | None = None,
        sealed: bool | None = None,
        seal_invoice: bool | None = None,
    ) -> dict[str, Any]:
        """Submit the worker's proof (its own kind) with the invoice the reward is paid to.

        The proof names the task's newest log entry the worker has seen (``head``; read from
        the task when not given), so it cannot be applied to a state the worker never saw.
        ``sealed``: send the proof NIP-44 sealed to the employer, the operator and every
        arbiter, with its ``proof_hash``, instead of in the clear; left out, the proof is sealed
        when the task read for its ``head`` is private (with ``head`` given, pass ``sealed``).
        ``seal_invoice``: send the invoice sealed to the operator alone (see
        :meth:`update_payout_invoice`); left out, it is sealed when the proof is.
        """
        task: dict[str, Any] | None = None
        if head is None:
            task = await self.get_task(task_id)
            head = task.get("log_head")
        if sealed is None:
            sealed = task is not None and task.get("visibility") == "private"
        if seal_invoice is None:
            seal_invoice = sealed
        body: dict[str, Any] = {
            "proof": proof,
            **await self._invoice_fields("payout_invoice", payout_invoice, seal_invoice),
        }
        if sealed:
            task = task or await self.get_task(task_id)
            del body["proof"]
            body.update(await self._sealed_proof(proof, task["employer_pubkey"]))
        extra = [["prev", head]] if head else []
        asked = {"proof": proof, "payout_invoice": payout_invoice, "sealed": sealed}
        return await self._task_write(
            task_id,
            "proof",
            "proof",
            body,
            idempotency_key,
            kind=self._proof_kind,
            extra_tags=extra,
            clear=_when_sealed(asked, sealed or seal_invoice),
        )

    async def approve(self, task_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return await self._task_write(task_id, "approve", "approve", {}, idempotency_key)

    async def reject(
        self, task_id: str, reason: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        body = {"reason": reason}
        return await self._task_write(task_id, "reject", "reject", body, idempotency_key)

    async def open_dispute(
        self, task_id: str, reason: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        body = {"reason": reason}
        return await self._task_write(task_id, "dispute", "dispute", body, idempotency_key)

    async def resolve_dispute(
        self,
        task_id: str,
        winner: str,
        note: str,
        *,
        worker_msat: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """As the arbiter: ``winner`` names the side that gets the money, or ``split`` with
        ``worker_msat`` for the worker (the employer gets the rest minus the fee)."""
        body: dict[str, Any] = {"winner": winner, "note": note}
        if worker_msat is not None:
            body["worker_msat"] = worker_msat
        return await self._task_write(task_id, "resolve", "resolve", body, idempotency_key)

    async def cancel(
        self, task_id: str, reason: str = "", *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        body = {"reason": reason}
        return await self._task_write(task_id, "cancel", "cancel", body, idempotency_key)

    async def propose_agreement(
        self, task_id: str, worker_msat: int, note: str = "", *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """As employer or worker: end the task by agreement; 0 cancels, the payout releases,
        anything between splits the amount."""
        body = {"worker_msat": worker_msat, "note": note}
        op = "propose-agreement"
        return await self._task_write(task_id, op, op, body, idempotency_key)

    async def accept_agreement(
        self, task_id: str, worker_msat: int, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Accept the other party's standing proposal; ``worker_msat`` must repeat it."""
        op = "accept-agreement"
        return await self._task_write(
            task_id, op, op, {"worker_msat": worker_msat}, idempotency_key
        )

    async def withdraw_agreement(
        self, task_id: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        op = "withdraw-agreement"
        return await self._task_write(task_id, op, op, {}, idempotency_key)

    async def review(
        self,
        task_id: str,
        rating: int,
        comment: str = "",
        *,
        receipt: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Rate the other party of a PAID or REFUNDED task (1-5), with this client's receipt
        (fetched when not given)."""
        if receipt is None:
            receipt = await self.my_receipt(task_id)
        body = {"rating": rating, "comment": comment, "receipt": receipt}
        return await self._task_write(task_id, "review", "review", body, idempotency_key)

    async def lock_deposit(
        self, task_id: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Ask for a deposit invoice on the task instead of proof of work; pay
        ``deposit.payment_request``, and once it is held this key's writes on the task need no
        proof of work."""
        return await self._task_write(task_id, "deposit", "deposit", {}, idempotency_key)

    async def claim_deposit(
        self,
        task_id: str,
        depositor: str,
        payout_invoice: str,
        *,
        idempotency_key: str | None = None,
        seal_invoice: bool | None = None,
    ) -> dict[str, Any]:
        """As the beneficiary of ``depositor``'s forfeited deposit: the invoice it is paid to
        (exactly the deposit's amount); sealed as for :meth:`update_payout_invoice`."""
        sealing = await self._sealing(task_id, seal_invoice)
        body = {
            "depositor": depositor,
            **await self._invoice_fields("payout_invoice", payout_invoice, sealing),
        }
        asked = {"depositor": depositor, "payout_invoice": payout_invoice}
        return await self._task_write(
            task_id,
            "deposit-payout",
            "deposit-payout",
            body,
            idempotency_key,
            clear=_when_sealed(asked, sealing),
        )

    async def update_payout_invoice(
        self,
        task_id: str,
        payout_invoice: str,
        *,
        idempotency_key: str | None = None,
        seal_invoice: bool | None = None,
    ) -> dict[str, Any]:
        """Replace the invoice the reward goes to, e.g. after the first one expired.

        ``seal_invoice``: send it NIP-44 sealed to the operator alone
        (``payout_invoice_sealed``), so the public log, the task and its answers never show it
        (it names this payee's node); left out, it is sealed when the task is private."""
        sealing = await self._sealing(task_id, seal_invoice)
        body = await self._invoice_fields("payout_invoice", payout_invoice, sealing)
        clear = _when_sealed({"payout_invoice": payout_invoice}, sealing)
        return await self._task_write(
            task_id, "payout-invoice", "payout-invoice", body, idempotency_key, clear=clear
        )

    async def update_refund_invoice(
        self,
        task_id: str,
        refund_invoice: str,
        *,
        idempotency_key: str | None = None,
        seal_invoice: bool | None = None,
    ) -> dict[str, Any]:
        """As the employer of a split task: the invoice your share is paid to (exactly it);
        sealed as for :meth:`update_payout_invoice`."""
        sealing = await self._sealing(task_id, seal_invoice)
        body = await self._invoice_fields("refund_invoice", refund_invoice, sealing)
        clear = _when_sealed({"refund_invoice": refund_invoice}, sealing)
        return await self._task_write(
            task_id, "refund-invoice", "refund-invoice", body, idempotency_key, clear=clear
        )

    # Reads -----------------------------------------------------------------------------------

    async def report_swap(
        self,
        task_id: str,
        *,
        role: str,
        swap_id: str,
        swap_api: str,
        lockup_txid: str | None = None,
        claim_txid: str | None = None,
        refund_txid: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Record your Boltz swap's facts in the task's public log: as the employer the
        ``funding`` swap that pays the hold invoice, as the worker the ``payout`` swap whose
        invoice is your payout invoice. Report each txid once known; a txid never changes, and
        the same report again changes nothing."""
        body: dict[str, Any] = {"role": role, "swap_id": swap_id, "swap_api": swap_api}
        facts = {"lockup_txid": lockup_txid, "claim_txid": claim_txid, "refund_txid": refund_txid}
        body.update({name: txid for name, txid in facts.items() if txid is not None})
        return await self._task_write(task_id, "swaps", "swap", body, idempotency_key)

    async def get_task(self, task_id: str) -> dict[str, Any]:
        return await self._read(_task_path(task_id))

    async def renewal(self, task_id: str) -> dict[str, Any] | None:
        """The task's open renewal (``funding_round``, ``payment_request``, ``amount_msat``, …):
        the employer pays it like the first funding invoice, before the current hold ends.
        None while no renewal is open."""
        renewal: dict[str, Any] | None = (await self.get_task(task_id)).get("renewal")
        return renewal

    async def keep_renewed(
        self,
        task_id: str,
        pay: Callable[[str], Awaitable[object]],
        *,
        poll_s: float = 5.0,
    ) -> dict[str, Any]:
        """Pay each renewal of the task with the employer's wallet callback ``pay`` (given the
        BOLT11 invoice) as taskhold opens it, until the task is decided; returns the task then.

        Each round's invoice is handed to ``pay`` once. A renewal left unpaid lets the hold run
        out: the deadline policy then decides the task, so a wallet that failed should retry
        well within ``renewal_lead_s`` (``info()["renewal"]``).
        """
        paid: set[int] = set()
        while True:
            task = await self.get_task(task_id)
            if task["state"] not in _RENEWABLE_STATES:
                return task
            renewal = task.get("renewal")
            if renewal is not None and renewal["funding_round"] not in paid:
                paid.add(renewal["funding_round"])
                await pay(renewal["payment_request"])
            await asyncio.sleep(poll_s)

    async def list_tasks(self, **filters: str | int | None) -> dict[str, Any]:
        """The server's task list (``{"tasks": [...], ...}``); None filters are left out."""
        params = {key: value for key, value in filters.items() if value is not None}
        return await self._read("/v1/tasks", params)

    async def transitions(self, task_id: str) -> dict[str, Any]:
        return await self._read(f"{_task_path(task_id)}/transitions")

    async def info(self) -> dict[str, Any]:
        return await self._read("/v1/info")

    async def subscribe(
        self,
        *,
        task_id: str | None = None,
        participant: str | None = None,
        after_gseq: int = -1,
        relays: Sequence[str] | None = None,
    ) -> AsyncGenerator[Transition]:
        """Verified transitions as relays publish them, in ``gseq`` order: of one task, of every
        task ``participant`` is a party to, or (neither) the whole log. Signatures and chains
        are checked (``taskhold.nostr.follow``); keep the last ``gseq`` and pass it as
        ``after_gseq`` to resume after a disconnect with no gap and no repeat.

        The operator key, the kinds and (unless ``relays`` is given) the relays come from
        ``/v1/info``; the relays are read with a client of their own."""
        info = await self.info()
        kinds = info["kinds"]
        selection = Selection(
            operator=info["operator_pubkey"],
            log_kind=kinds["log_entry"],
            listing_kind=kinds["listing"],
            task_id=task_id,
            participant=participant,
        )
        pool = RelayPool()
        try:
            await pool.connect(info["relays"] if relays is None else relays)
            async with contextlib.aclosing(
                follow_log(pool, selection, after_gseq=after_gseq)
            ) as transitions:
                async for transition in transitions:
                    yield transition
        finally:
            await pool.close()

    async def reputation(self, pubkey: str | None = None) -> dict[str, Any]:
        """A pubkey's score, metrics and the log range they cover (default: this client's)."""
        return await self._read(f"/v1/reputation/{quote(pubkey or self.pubkey_hex, safe='')}")

    async def receipts(self, task_id: str) -> dict[str, Any]:
        """The operator's review receipts of a PAID or REFUNDED task, one per party."""
        return await self._read(f"{_task_path(task_id)}/receipts")

    async def my_receipt(self, task_id: str) -> dict[str, Any]:
        """This client's receipt for the task; raises LookupError if there is none."""
        for item in (await self.receipts(task_id))["receipts"]:
            if item["reviewer"] == self.pubkey_hex:
                receipt: dict[str, Any] = item["receipt"]
                return receipt
        raise LookupError(f"no review receipt for this pubkey on task {task_id}")

    async def reviews(self, task_id: str) -> dict[str, Any]:
        return await self._read(f"{_task_path(task_id)}/reviews")

    async def wait_for_state(
        self,
        task_id: str,
        states: Collection[str],
        timeout_s: float,
        poll_s: float = 0.2,
        on_poll: Callable[[dict[str, Any]], object] | None = None,
    ) -> dict[str, Any]:
        """Poll until the task is in one of ``states``; returns it, or raises TimeoutError.

        Changes happen behind the API (payments land, timers fire), so polling is how a caller
        without a Nostr subscription waits for them.
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            task = await self.get_task(task_id)
            if on_poll is not None:
                on_poll(task)
            if task.get("state") in states:
                return task
            if asyncio.get_running_loop().time() >= deadline:
                raise TimeoutError(
                    f"task {task_id} is still {task.get('state')} after {timeout_s} s; "
                    f"waited for {', '.join(sorted(states))}"
                )
            await asyncio.sleep(poll_s)

    # Simulator wallets (only served when the server runs the Lightning simulator) --------------

    async def sim_pay(self, payment_request: str, wallet: str = "employer") -> dict[str, Any]:
        body = {"payment_request": payment_request, "wallet": wallet}
        return await self._unsigned_post("/v1/sim/pay", body)

    async def sim_invoice(
        self, amount_msat: int, wallet: str = "worker", memo: str = ""
    ) -> dict[str, Any]:
        body = {"amount_msat": amount_msat, "wallet": wallet, "memo": memo}
        return await self._unsigned_post("/v1/sim/invoice", body)

    async def sim_mine(self, blocks: int) -> dict[str, Any]:
        return await self._unsigned_post("/v1/sim/mine", {"blocks": blocks})

    async def sim_wallets(self) -> dict[str, Any]:
        """The simulated nodes' balances (``balances_msat`` by name) and the chain height."""
        return await self._read("/v1/sim/wallets")

    # Plumbing --------------------------------------------------------------------------------

    async def _task_write(
        self,
        task_id: str,
        action: str,
        op: str,
        body: dict[str, Any],
        idempotency_key: str | None,
        *,
        kind: int | None = None,
        extra_tags: list[list[str]] | None = None,
        clear: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        path = f"{_task_path(task_id)}/{action}"
        return await self._signed(
            path, op, task_id, body, idempotency_key, kind=kind, extra_tags=extra_tags, clear=clear
        )

    async def _signed(
        self,
        path: str,
        op: str,
        task_id: str | None,
        body: dict[str, Any],
        idempotency_key: str | None,
        *,
        kind: int | None = None,
        extra_tags: list[list[str]] | None = None,
        clear: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Sign ``body`` and post it. ``clear`` is what the caller asked, in the clear, when
        ``body`` holds sealed copies (a fresh salt and nonces at every sealing): the same call
        under the same key then resends the event signed first instead of a new one, which the
        server would refuse as ``idempotency_key_reused``."""
        key = idempotency_key or str(uuid.uuid4())
        tags = [["op", op]] if task_id is None else [["op", op], ["task", task_id]]
        # The key is signed too: two identical requests in one second stay distinct events,
        # and nobody can replay the signature under another key.
        tags.append(["key", key])
        tags.extend(extra_tags or [])
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        event_kind = self._request_kind if kind is None else kind
        # What the caller asks, without the tags read from the server (a proof's head moves
        # once the first attempt went through).
        asked = json.dumps([path, event_kind, content if clear is None else clear])
        for attempt in range(2):
            event = self._remembered(idempotency_key, asked) if attempt == 0 else None
            if event is None:
                event = await self._sign(event_kind, content, tags)
                self._remember(idempotency_key, asked, event)
            headers = {"Idempotency-Key": key}
            # Built once: every retry sends the very same event and key.
            request = self._http.build_request(
                "POST", self._url(path), json={"request": event}, headers=headers
            )
            try:
                return await self._send(request, retry=True)
            except TaskholdAPIError as exc:
                # A refused write wrote nothing, so a new event under the same key is safe.
                required = exc.problem.get("required_bits")
                if (
                    attempt > 0
                    or exc.code != "pow_required"
                    or not self._auto_pow
                    or not isinstance(required, int)
                    or not self.pow_difficulty < required <= self._max_pow_bits
                ):
                    raise
                self.pow_difficulty = required
        raise AssertionError("unreachable")

    def _remembered(self, key: str | None, asked: str) -> dict[str, Any] | None:
        """The event already signed for this caller's key and request, to be sent unchanged."""
        kept = self._signed_by_key.get(key) if key is not None else None
        if kept is None or kept[0] != asked:
            return None
        return kept[1]

    def _remember(self, key: str | None, asked: str, event: dict[str, Any]) -> None:
        if key is None:  # a key made here is never asked for again
            return
        self._signed_by_key[key] = (asked, event)
        self._signed_by_key.move_to_end(key)
        while len(self._signed_by_key) > self._remembered_keys:
            self._signed_by_key.popitem(last=False)

    def _own_keys(self) -> NostrKeys:
        if isinstance(self._keys, RemoteSigner):
            raise RemoteSignerError(
                "sealing or opening private content needs the key itself (a key file); a"
                " remote signer is not asked to do it"
            )
        return self._keys

    async def _sign(self, kind: int, content: str, tags: list[list[str]]) -> dict[str, Any]:
        created_at = int(self._clock())
        if isinstance(self._keys, RemoteSigner):
            return await self._keys.sign_event(
                kind, content, tags, created_at, max(self.pow_difficulty, 0)
            )
        if self.pow_difficulty <= 0:
            return self._keys.sign_event(kind, content, tags, created_at)
        # Mining takes a while; keep the event loop serving meanwhile.
        return await asyncio.to_thread(
            self._keys.sign_event_mined, kind, content, tags, created_at, self.pow_difficulty
        )

    async def _read(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request = self._http.build_request("GET", self._url(path), params=params)
        return await self._send(request, retry=True)

    async def _unsigned_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        # Not retried: without an idempotency key a second pay or mine could act twice.
        request = self._http.build_request("POST", self._url(path), json=body)
        return await self._send(request, retry=False)

    async def _send(self, request: httpx.Request, *, retry: bool) -> dict[str, Any]:
        retries_left = self._retries if retry else 0
        delay_s = self._retry_delay_s
        while True:
            try:
                response = await self._http.send(request)
            except httpx.TransportError:
                if retries_left <= 0:
                    raise
                retries_left -= 1
                await self._sleep(delay_s)
                delay_s = min(delay_s * 2, self._max_retry_delay_s)
                continue
            return _answer(response)

    def _url(self, path: str) -> str:
        return f"{self._base_url}{path}"


def _when_sealed(asked: dict[str, Any], sealed: bool) -> dict[str, Any] | None:
    """What a call asked in the clear, for ``_signed`` to recognise a retry of it, when what it
    sends is sealed (fresh nonces each time); None when the body itself says it."""
    return {**asked, "sealed": True} if sealed else None


def payout_terms(invoice: str) -> dict[str, Any]:
    """The ``payout_hash`` and ``payout_msat`` a request giving ``invoice`` signs in clear (the
    public log proves the payout against them). Nothing for text that is not an invoice with an
    amount: the server then refuses the request with its own reason."""
    try:
        decoded = decode_invoice(invoice)
    except Invalid:
        return {}
    if decoded.amount_msat is None:
        return {}
    return {"payout_hash": decoded.payment_hash_hex, "payout_msat": decoded.amount_msat}


def _task_path(task_id: str) -> str:
    return f"/v1/tasks/{quote(task_id, safe='')}"


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer; any other answer raises TaskholdAPIError."""
    status = response.status_code
    try:
        data = response.json() if response.content else {}
    except ValueError:
        data = None
    if response.is_success and isinstance(data, dict):
        return data
    if response.is_success:
        raise TaskholdAPIError(
            status, "unexpected_response", "Unexpected response", "the answer is not a JSON object"
        )
    if not isinstance(data, dict):
        raise TaskholdAPIError(
            status, f"http_{status}", response.reason_phrase, response.text[:500]
        )
    retry_after = response.headers.get("Retry-After", "")
    raise TaskholdAPIError(
        status,
        str(data.get("code") or f"http_{status}"),
        str(data.get("title") or response.reason_phrase),
        str(data.get("detail") or ""),
        problem=data,
        retry_after_s=int(retry_after) if retry_after.isdigit() else None,
    )


def verify_webhook(
    body: bytes | str,
    *,
    operator_pubkey: str,
    kind: int = KIND_WEBHOOK_DELIVERY,
    url: str | None = None,
    max_age_s: int | None = None,
) -> dict[str, Any]:
    """For a webhook receiver: the log entry a delivery POSTed by taskhold carries, once its
    operator signature (over the body as received), its URL and, if ``max_age_s`` is given, its
    age check out; ValueError otherwise. Dedupe on the returned entry's ``id``: a delivery
    whose answer was lost comes again. See ``docs/webhooks.md``."""
    return verify_delivery(
        body,
        operator_pubkey=operator_pubkey,
        kind=kind,
        url=url,
        now=int(time.time()),
        max_age_s=max_age_s,
    )
