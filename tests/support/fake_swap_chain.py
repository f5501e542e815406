"""An in-memory chain for the devnet swap server's tests: it implements ``SwapChain`` and
checks what it is asked to broadcast the way a node would, for the spends swaps make.

Every input must spend a known, unspent output; a taproot key-path witness must carry a BIP-340
signature over the BIP-341 message that verifies under the output key; a script-path witness
must open the output through its control block (leaf hash, merkle path, tweak, parity) and satisfy
one of the three swap leaves: the refund leaf's signature and CHECKLOCKTIMEVERIFY (nLockTime at
least the leaf's height, not above the tip, a non-final nSequence), or a claim leaf's preimage and
signature. A spend that would not be mined is refused with ``ChainRefused``.

Coins from outside (the server's wallet in ``send_to_address``, a client's wallet in ``fund``)
come from invented inputs, trusted as a real wallet's would be.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from coincurve import PrivateKey, PublicKey
from embit.hashes import ripemd160
from embit.script import Script, address_to_scriptpubkey
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput

from taskhold.devnet.swap_server.chain import ChainOutput, ChainRefused
from taskhold.swaps.musig import verify_schnorr
from taskhold.swaps.tree import (
    LEAF_VERSION,
    Network,
    branch_hash,
    leaf_hash,
    segwit_address,
    taptweak,
)

__all__ = ["FakeChain"]

OP_SIZE, OP_EQUALVERIFY, OP_HASH160 = 0x82, 0x88, 0xA9
OP_CHECKSIG, OP_CHECKSIGVERIFY, OP_CHECKLOCKTIMEVERIFY = 0xAC, 0xAD, 0xB1


@dataclass
class _Tx:
    tx: Transaction
    hex: str
    txid: str
    height: int | None = None  # None: in the mempool


@dataclass
class FakeChain:
    network: Network = Network.REGTEST
    tip: int = 200
    txs: list[_Tx] = field(default_factory=list)
    wallet_scripts: set[bytes] = field(default_factory=set)
    refuse_sends: bool = False
    """Make ``send_to_address`` fail, as an empty wallet would."""
    broadcasts: list[str] = field(default_factory=list)
    """Txids accepted through :meth:`broadcast`, in order."""

    # -- test controls --------------------------------------------------------------------------

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` blocks; the first takes the whole mempool."""
        for _ in range(blocks):
            self.tip += 1
            for entry in self.txs:
                if entry.height is None:
                    entry.height = self.tip

    def fund(self, address: str, amount_sat: int) -> str:
        """A payment from someone's wallet (the client's lockup): into the mempool."""
        return self._wallet_pay(address, amount_sat)

    def wallet_received_sat(self) -> int:
        """What the server's own wallet (addresses from ``new_address``) received."""
        return sum(
            out.value
            for entry in self.txs
            for out in entry.tx.vout
            if out.script_pubkey.data in self.wallet_scripts
        )

    def tx(self, txid: str) -> Transaction:
        return self._by_txid(txid).tx

    # -- SwapChain -----------------------------------------------------------------------------

    async def height(self) -> int:
        return self.tip

    async def find_output(self, script_pubkey: bytes, *, since_height: int) -> ChainOutput | None:
        ordered = sorted(
            (e for e in self.txs if e.height is None or e.height >= since_height),
            key=lambda e: (e.height is None, e.height or 0),
        )
        for entry in ordered:
            for vout, out in enumerate(entry.tx.vout):
                if out.script_pubkey.data == script_pubkey:
                    return ChainOutput(
                        entry.txid, vout, out.value, entry.hex, self._confirmations(entry)
                    )
        return None

    async def find_spend(self, txid: str, vout: int, *, since_height: int) -> str | None:
        for entry in self.txs:
            if entry.height is not None and entry.height < since_height:
                continue
            for vin in entry.tx.vin:
                if vin.txid.hex() == txid and vin.vout == vout:
                    return entry.hex
        return None

    async def broadcast(self, tx_hex: str) -> str:
        try:
            tx = Transaction.parse(bytes.fromhex(tx_hex))
        except Exception as exc:
            raise ChainRefused(f"TX decode failed: {exc!r}") from exc
        txid = tx.txid().hex()
        if any(e.txid == txid for e in self.txs):
            raise ChainRefused("transaction already in block chain or mempool")
        prevouts = [self._unspent(vin.txid.hex(), vin.vout) for vin in tx.vin]
        if sum(o.value for o in tx.vout) > sum(p.value for p in prevouts):
            raise ChainRefused("outputs exceed inputs")
        spks = [p.script_pubkey for p in prevouts]
        values = [p.value for p in prevouts]
        for index, prevout in enumerate(prevouts):
            self._check_input(tx, index, prevout.script_pubkey.data, spks, values)
        self.txs.append(_Tx(tx, tx_hex, txid))
        self.broadcasts.append(txid)
        return txid

    async def send_to_address(self, address: str, amount_sat: int) -> str:
        if self.refuse_sends:
            raise ChainRefused("insufficient funds")
        return self._wallet_pay(address, amount_sat)

    async def new_address(self) -> str:
        xonly = PrivateKey().public_key.format()[1:]
        self.wallet_scripts.add(b"\x51\x20" + xonly)
        return segwit_address(self.network, 1, xonly)

    # -- internals -----------------------------------------------------------------------------

    def _wallet_pay(self, address: str, amount_sat: int) -> str:
        spk = address_to_scriptpubkey(address)
        vin = TransactionInput(secrets.token_bytes(32), 0)
        change = TransactionOutput(7_000_000, Script(b"\x51\x20" + secrets.token_bytes(32)))
        tx = Transaction(vin=[vin], vout=[TransactionOutput(amount_sat, spk), change])
        txid = tx.txid().hex()
        self.txs.append(_Tx(tx, tx.serialize().hex(), txid))
        return txid

    def _confirmations(self, entry: _Tx) -> int:
        return 0 if entry.height is None else self.tip - entry.height + 1

    def _by_txid(self, txid: str) -> _Tx:
        for entry in self.txs:
            if entry.txid == txid:
                return entry
        raise KeyError(txid)

    def _unspent(self, txid: str, vout: int) -> TransactionOutput:
        try:
            entry = self._by_txid(txid)
        except KeyError:
            raise ChainRefused(f"missing inputs: {txid}:{vout}") from None
        if vout >= len(entry.tx.vout):
            raise ChainRefused(f"missing inputs: {txid}:{vout}")
        for other in self.txs:
            if any(v.txid.hex() == txid and v.vout == vout for v in other.tx.vin):
                raise ChainRefused(f"{txid}:{vout} is already spent by {other.txid}")
        out: TransactionOutput = entry.tx.vout[vout]
        return out

    def _check_input(
        self,
        tx: Transaction,
        index: int,
        spk: bytes,
        spks: list[Script],
        values: list[int],
    ) -> None:
        if len(spk) != 34 or spk[:2] != b"\x51\x20":
            raise ChainRefused("only taproot outputs are spent in these tests")
        output_key = spk[2:]
        items = list(tx.vin[index].witness.items)
        if len(items) == 1:  # key path
            msg = tx.sighash_taproot(index, spks, values, SIGHASH.DEFAULT)
            if len(items[0]) != 64 or not verify_schnorr(output_key, msg, items[0]):
                raise ChainRefused("key-path signature does not verify")
            return
        if len(items) < 3:
            raise ChainRefused("witness is neither a key path nor a script path")
        *stack, script, control = items
        self._check_control_block(output_key, script, control)
        msg = tx.sighash_taproot(
            index,
            spks,
            values,
            SIGHASH.DEFAULT,
            ext_flag=1,
            script=Script(script),
            leaf_version=LEAF_VERSION,
        )
        self._run_leaf(tx, index, script, stack, msg)

    @staticmethod
    def _check_control_block(output_key: bytes, script: bytes, control: bytes) -> None:
        if len(control) < 33 or (len(control) - 33) % 32 or control[0] & 0xFE != LEAF_VERSION:
            raise ChainRefused("bad control block")
        internal = control[1:33]
        node = leaf_hash(script)
        for i in range(33, len(control), 32):
            node = branch_hash(node, control[i : i + 32])
        tweak = taptweak(internal, node)
        try:
            tweaked = PublicKey(b"\x02" + internal).add(tweak).format()
        except ValueError:
            raise ChainRefused("bad internal key in the control block") from None
        if tweaked[1:] != output_key or (tweaked[0] & 1) != (control[0] & 1):
            raise ChainRefused("the control block does not open this output")

    def _run_leaf(
        self, tx: Transaction, index: int, script: bytes, stack: list[bytes], msg: bytes
    ) -> None:
        def check_sig(key: bytes, sig: bytes) -> None:
            if len(sig) != 64 or not verify_schnorr(key, msg, sig):
                raise ChainRefused("script-path signature does not verify")

        def check_hash(preimage: bytes, h160: bytes) -> None:
            if ripemd160(hashlib.sha256(preimage).digest()) != h160:
                raise ChainRefused("preimage does not match the leaf's hash")

        # refund leaf: <key> CHECKSIGVERIFY <height> CHECKLOCKTIMEVERIFY
        if (
            len(script) > 36
            and script[0] == 32
            and script[33] == OP_CHECKSIGVERIFY
            and script[-1] == OP_CHECKLOCKTIMEVERIFY
        ):
            (sig,) = stack if len(stack) == 1 else (b"",)
            check_sig(script[1:33], sig)
            n = script[34]
            timeout = int.from_bytes(script[35 : 35 + n], "little")
            if tx.vin[index].sequence == 0xFFFFFFFF:
                raise ChainRefused("a final nSequence switches CHECKLOCKTIMEVERIFY off")
            if tx.locktime < timeout:
                raise ChainRefused(f"locktime {tx.locktime} is below the leaf's {timeout}")
            if tx.locktime > self.tip:
                raise ChainRefused("non-final: locktime is above the chain tip")
            return
        if len(stack) != 2:
            raise ChainRefused("a claim leaf takes a signature and a preimage")
        sig, preimage = stack
        # submarine claim: HASH160 <h> EQUALVERIFY <key> CHECKSIG
        if len(script) == 57 and script[0] == OP_HASH160 and script[-1] == OP_CHECKSIG:
            check_hash(preimage, script[2:22])
            check_sig(script[24:56], sig)
            return
        # reverse claim: SIZE 32 EQUALVERIFY HASH160 <h> EQUALVERIFY <key> CHECKSIG
        if len(script) == 61 and script[0] == OP_SIZE and script[-1] == OP_CHECKSIG:
            if len(preimage) != 32:
                raise ChainRefused("the preimage must be 32 bytes")
            check_hash(preimage, script[6:26])
            check_sig(script[28:60], sig)
            return
        raise ChainRefused("unknown leaf script")
