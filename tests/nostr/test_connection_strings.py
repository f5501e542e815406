"""``bunker://`` and ``nostr+walletconnect://`` strings: parsed, their secret kept out of every
``repr`` and parse error, and blanked out of any text that quotes it."""

from __future__ import annotations

import pytest

from taskhold.nostr.remote_signer import BunkerAddress
from taskhold.nostr.wallet_connect import WalletConnectUri

SERVICE = "ab" * 32
SECRET = "cd" * 32


def test_a_bunker_string_is_parsed_and_its_secret_kept_out_of_repr() -> None:
    text = (
        f"bunker://{SERVICE}?relay=wss%3A%2F%2Frelay.example&relay=ws://127.0.0.1:7&secret={SECRET}"
    )
    address = BunkerAddress.parse(text)
    assert (address.pubkey, address.relays) == (
        SERVICE,
        ("wss://relay.example", "ws://127.0.0.1:7"),
    )
    assert address.secret == SECRET
    assert SECRET not in repr(address)
    assert address.scrub(f"the signer said: {text} / {SECRET}") == "the signer said: *** / ***"


def test_an_nwc_string_needs_a_64_hex_secret() -> None:
    uri = WalletConnectUri.parse(f"nostr+walletconnect://{SERVICE}?relay=ws://h:1&secret={SECRET}")
    assert uri.pubkey == SERVICE and SECRET not in repr(uri)
    with pytest.raises(ValueError, match="the secret is 64 hex characters"):
        WalletConnectUri.parse(f"nostr+walletconnect://{SERVICE}?relay=ws://h:1&secret=short")


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (BunkerAddress.parse, f"bunker://{SERVICE.upper()}?relay=ws://h:1&secret={SECRET}"),
        (BunkerAddress.parse, f"bunker://{SERVICE}?relay=https://h&secret={SECRET}"),
        (BunkerAddress.parse, f"nostr+walletconnect://{SERVICE}?relay=ws://h:1&secret={SECRET}"),
        (WalletConnectUri.parse, f"bunker://{SERVICE}?relay=ws://h:1&secret={SECRET}"),
        (WalletConnectUri.parse, f"nostr+walletconnect://{SERVICE}?secret={SECRET}"),
    ],
)
def test_a_string_that_is_not_one_is_refused_without_repeating_it(parse: object, text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse(text)  # type: ignore[operator]
    assert SECRET not in str(refused.value)
