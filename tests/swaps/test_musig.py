"""MuSig2 wrapper: BIP-327 vectors, a full 2-of-2 round under a taproot tweak, and the refusals
(reused nonce, wrong signer, malformed input)."""

from __future__ import annotations

import hashlib

import pytest
from coincurve import PrivateKey

from taskhold.swaps.musig import KeyAgg, MusigError, Session, nonce_gen, verify_schnorr
from taskhold.swaps.tree import tagged_hash

# bitcoin/bips bip-0327/vectors/key_agg_vectors.json: pubkeys and the valid cases.
KEY_AGG_PUBKEYS = [
    "02F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9",
    "03DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
    "023590A94E768F8E1815C2F24B4D80A8E3149316C3518CE7B7AD338368D038CA66",
    "020000000000000000000000000000000000000000000000000000000000000005",  # not on the curve
    "02FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC30",  # x >= field size
    "04F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9",  # bad prefix
]
KEY_AGG_VALID = [
    ([0, 1, 2], "90539EEDE565F5D054F32CC0C220126889ED1E5D193BAF15AEF344FE59D4610C"),
    ([2, 1, 0], "6204DE8B083426DC6EAF9502D27024D53FC826BF7D2012148A0575435DF54B2B"),
    ([0, 0, 0], "B436E3BAD62B8CD409969A224731C193D051162D8C5AE8B109306127DA3AA935"),
    ([0, 0, 1, 1], "69BC22BFA5D106306E48A20679DE1D7389386124D07571D0D872686028C26A3E"),
]
KEY_AGG_INVALID = [[0, 3], [0, 4], [5, 0]]

# bip-0327/vectors/tweak_vectors.json: the x-only tweak E8F7... as the first tweak is valid;
# the group order n as a tweak is refused.
TWEAK_OK = "E8F791FF9225A2AF0102AFFF4A9A723D9612A682A25EBE79802B263CDFCD83BB"
TWEAK_N = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"


def _keys(indices: list[int]) -> list[bytes]:
    return [bytes.fromhex(KEY_AGG_PUBKEYS[i]) for i in indices]


@pytest.mark.parametrize(("indices", "expected"), KEY_AGG_VALID)
def test_bip327_key_agg_vectors(indices: list[int], expected: str) -> None:
    assert KeyAgg(_keys(indices)).xonly().hex() == expected.lower()


def test_key_order_is_kept_not_sorted() -> None:
    """Boltz's [boltz, client] order is part of the address; sorting would change it."""
    assert KeyAgg(_keys([0, 1, 2])).xonly() != KeyAgg(_keys([2, 1, 0])).xonly()


@pytest.mark.parametrize("indices", KEY_AGG_INVALID)
def test_bip327_invalid_keys_refused(indices: list[int]) -> None:
    with pytest.raises(MusigError):
        KeyAgg(_keys(indices))


def test_tweak_equal_to_group_order_refused() -> None:
    agg = KeyAgg(_keys([1, 2, 0]))
    with pytest.raises(MusigError):
        agg.tweak_xonly(bytes.fromhex(TWEAK_N))
    agg.tweak_xonly(bytes.fromhex(TWEAK_OK))  # a valid tweak still goes through


def _parties() -> tuple[bytes, bytes, bytes, bytes]:
    boltz = hashlib.sha256(b"boltz test key").digest()
    client = hashlib.sha256(b"client test key").digest()
    return (
        boltz,
        PrivateKey(boltz).public_key.format(),
        client,
        PrivateKey(client).public_key.format(),
    )


def _tweaked_agg(boltz_pub: bytes, client_pub: bytes) -> KeyAgg:
    agg = KeyAgg([boltz_pub, client_pub])
    agg.tweak_xonly(tagged_hash("TapTweak", agg.xonly() + b"\x11" * 32))
    return agg


def test_two_of_two_round_verifies_under_the_tweaked_key() -> None:
    boltz, boltz_pub, client, client_pub = _parties()
    msg = hashlib.sha256(b"a sighash").digest()
    # each side builds its own context, as Boltz and the client do
    agg_b, agg_c = _tweaked_agg(boltz_pub, client_pub), _tweaked_agg(boltz_pub, client_pub)
    assert agg_b.xonly() == agg_c.xonly() != agg_b.internal_xonly
    nb, nc = nonce_gen(boltz, agg_b, msg), nonce_gen(client, agg_c)
    assert len(nb.public) == len(nc.public) == 66
    sb = Session(agg_b, [nb.public, nc.public], msg)
    sc = Session(agg_c, [nb.public, nc.public], msg)
    part_b, part_c = sb.sign(nb.secret, boltz), sc.sign(nc.secret, client)
    assert sc.verify_partial(part_b, boltz_pub)
    assert sb.verify_partial(part_c, client_pub)
    sig = sc.aggregate([part_b, part_c])
    assert sig == sb.aggregate([part_c, part_b])  # order of partials does not matter
    assert verify_schnorr(agg_c.xonly(), msg, sig)
    assert not verify_schnorr(agg_c.internal_xonly, msg, sig)  # only the tweaked key
    assert not verify_schnorr(agg_c.xonly(), hashlib.sha256(b"other").digest(), sig)


def test_partial_signature_from_the_wrong_key_fails_verification() -> None:
    boltz, boltz_pub, client, client_pub = _parties()
    msg = hashlib.sha256(b"a sighash").digest()
    agg = _tweaked_agg(boltz_pub, client_pub)
    nb, nc = nonce_gen(boltz, agg), nonce_gen(client, agg)
    session = Session(agg, [nb.public, nc.public], msg)
    part_c = session.sign(nc.secret, client)
    assert session.verify_partial(part_c, client_pub)
    assert not session.verify_partial(part_c, boltz_pub)  # claimed as Boltz's: refused
    stranger = PrivateKey(hashlib.sha256(b"stranger").digest()).public_key.format()
    with pytest.raises(MusigError):
        session.verify_partial(part_c, stranger)
    # a forged partial (bit flipped) is refused, and the aggregate would not verify
    forged = bytes([part_c[0] ^ 1]) + part_c[1:]
    assert not session.verify_partial(forged, client_pub)
    part_b = session.sign(nb.secret, boltz)
    assert not verify_schnorr(agg.xonly(), msg, session.aggregate([part_b, forged]))


def test_a_secret_nonce_signs_once() -> None:
    boltz, boltz_pub, client, client_pub = _parties()
    agg = _tweaked_agg(boltz_pub, client_pub)
    nb, nc = nonce_gen(boltz, agg), nonce_gen(client, agg)
    first = Session(agg, [nb.public, nc.public], hashlib.sha256(b"one").digest())
    first.sign(nc.secret, client)
    assert nc.secret.used
    second = Session(agg, [nb.public, nc.public], hashlib.sha256(b"two").digest())
    with pytest.raises(MusigError, match="already used"):
        second.sign(nc.secret, client)


def test_nonces_are_fresh_each_time() -> None:
    boltz, boltz_pub, _, client_pub = _parties()
    agg = KeyAgg([boltz_pub, client_pub])
    assert nonce_gen(boltz, agg).public != nonce_gen(boltz, agg).public


def test_signing_with_a_key_that_does_not_own_the_nonce_is_refused() -> None:
    boltz, boltz_pub, client, client_pub = _parties()
    agg = KeyAgg([boltz_pub, client_pub])
    nb, nc = nonce_gen(boltz, agg), nonce_gen(client, agg)
    session = Session(agg, [nb.public, nc.public], b"\x01" * 32)
    with pytest.raises(MusigError):
        session.sign(nc.secret, boltz)


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x02" * 65, b"\x05" + b"\x01" * 65, b"\x02" + b"\xff" * 32 + b"\x02" + b"\x01" * 32],
)
def test_malformed_public_nonce_refused(bad: bytes) -> None:
    _, boltz_pub, client, client_pub = _parties()
    agg = KeyAgg([boltz_pub, client_pub])
    good = nonce_gen(client, agg).public
    with pytest.raises(MusigError):
        Session(agg, [bad, good], b"\x01" * 32)


def test_one_nonce_per_signer() -> None:
    _, boltz_pub, client, client_pub = _parties()
    agg = KeyAgg([boltz_pub, client_pub])
    with pytest.raises(MusigError, match="one public nonce per signer"):
        Session(agg, [nonce_gen(client, agg).public], b"\x01" * 32)


# bip-0327/vectors/sign_verify_vectors.json: the partial signatures of the valid cases with a
# 32-byte message must verify for their signer, and the verify_fail/verify_error cases must not.
# (Signing itself cannot take the vectors' secret nonces: libsecp256k1's secnonce is opaque and
# only made by nonce_gen, which is the point of the single-use design.)
SV_PUBKEYS = [
    "03935F972DA013F80AE011890FA89B67A27B7BE6CCB24D3274D18B2D4067F261A9",
    "02F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9",
    "02DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA661",
    "020000000000000000000000000000000000000000000000000000000000000007",
]
SV_PNONCES = [
    "0337C87821AFD50A8644D820A8F3E02E499C931865C2360FB43D0A0D20DAFE07EA"
    "0287BF891D2A6DEAEBADC909352AA9405D1428C15F4B75F04DAE642A95C2548480",
    "0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798"
    "0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798",
    "032DE2662628C90B03F5E720284EB52FF7D71F4284F627B68A853D78C78E1FFE93"
    "03E4C5524E83FFE1493B9077CF1CA6BEB2090C93D930321071AD40B2F44E599046",
    "0237C87821AFD50A8644D820A8F3E02E499C931865C2360FB43D0A0D20DAFE07EA"
    "0387BF891D2A6DEAEBADC909352AA9405D1428C15F4B75F04DAE642A95C2548480",
    "0200000000000000000000000000000000000000000000000000000000000000"
    "090287BF891D2A6DEAEBADC909352AA9405D1428C15F4B75F04DAE642A95C2548480",
]
SV_MSG = "F95466D086770E689964664219266FE5ED215C92AE20BAB5C9D79ADDDDF3C0CF"
SV_VALID = [
    ([0, 1, 2], [0, 1, 2], 0, "012ABBCB52B3016AC03AD82395A1A415C48B93DEF78718E62A7A90052FE224FB"),
    ([1, 0, 2], [1, 0, 2], 1, "9FF2F7AAA856150CC8819254218D3ADEEB0535269051897724F9DB3789513A52"),
    ([1, 2, 0], [1, 2, 0], 2, "FA23C359F6FAC4E7796BB93BC9F0532A95468C539BA20FF86D7C76ED92227900"),
    # both halves of the aggregate nonce are the point at infinity
    ([0, 1], [0, 3], 0, "AE386064B26105404798F75DE2EB9AF5EDA5387B064B83D049CB7C5E08879531"),
]
SV_VERIFY_FAIL = [
    ("97AC833ADCB1AFA42EBF9E0725616F3C9A0D5B614F6FE283CEAAA37A8FFAF406", 0),  # negated
    ("68537CC5234E505BD14061F8DA9E90C220A181855FD8BDB7F127BB12403B4D3B", 1),  # wrong signer
]
SV_SIG_OVER_N = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"


SV_AGGNONCE = (
    "028465FCF0BBDBCF443AABCCE533D42B4B5A10966AC09A49655E8C42DAAB8FCD61"
    "037496A3CC86926D452CAFCFD55D25972CA1675D549310DE296BFF42F72EEEA8C9"
)


def test_bip327_nonce_aggregation() -> None:
    assert _sv_session([0, 1, 2], [0, 1, 2]).aggnonce.hex() == SV_AGGNONCE.lower()
    assert _sv_session([0, 1], [0, 3]).aggnonce == b"\x00" * 66  # infinity, both halves


def _sv_session(key_indices: list[int], nonce_indices: list[int]) -> Session:
    agg = KeyAgg([bytes.fromhex(SV_PUBKEYS[i]) for i in key_indices])
    return Session(
        agg, [bytes.fromhex(SV_PNONCES[i]) for i in nonce_indices], bytes.fromhex(SV_MSG)
    )


@pytest.mark.parametrize(("keys", "nonces", "signer", "expected"), SV_VALID)
def test_bip327_valid_partial_signatures_verify(
    keys: list[int], nonces: list[int], signer: int, expected: str
) -> None:
    session = _sv_session(keys, nonces)
    assert session.verify_partial(bytes.fromhex(expected), bytes.fromhex(SV_PUBKEYS[keys[signer]]))
    others = [k for k in keys if k != keys[signer]]
    assert not session.verify_partial(bytes.fromhex(expected), bytes.fromhex(SV_PUBKEYS[others[0]]))


@pytest.mark.parametrize(("sig", "signer"), SV_VERIFY_FAIL)
def test_bip327_verify_fail_vectors(sig: str, signer: int) -> None:
    session = _sv_session([0, 1, 2], [0, 1, 2])
    assert not session.verify_partial(bytes.fromhex(sig), bytes.fromhex(SV_PUBKEYS[signer]))


def test_bip327_partial_signature_over_the_group_order_refused() -> None:
    session = _sv_session([0, 1, 2], [0, 1, 2])
    with pytest.raises(MusigError):
        session.verify_partial(bytes.fromhex(SV_SIG_OVER_N), bytes.fromhex(SV_PUBKEYS[0]))


def test_bip327_verify_error_vectors() -> None:
    with pytest.raises(MusigError):  # invalid pubnonce (signer 0)
        _sv_session([0, 1, 2], [4, 1, 2])
    with pytest.raises(MusigError):  # invalid pubkey (signer 0)
        _sv_session([3, 1, 2], [0, 1, 2])


@pytest.mark.parametrize("seckey", [b"\x00" * 32, b"\xff" * 32, b"\x01" * 31])
def test_invalid_secret_keys_refused(seckey: bytes) -> None:
    _, boltz_pub, client, client_pub = _parties()
    agg = KeyAgg([boltz_pub, client_pub])
    with pytest.raises(MusigError):
        nonce_gen(seckey, agg)
    nonce = nonce_gen(client, agg)
    session = Session(agg, [nonce_gen(client, agg).public, nonce.public], b"\x01" * 32)
    with pytest.raises(MusigError):
        session.sign(nonce.secret, seckey)
    assert not nonce.secret.used  # a refused attempt does not burn the nonce
