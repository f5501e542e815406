"""``up --remote-signer`` without a network: the signer's ports and state, the two lnd command
lines (the signer offline with no chain backend; the escrow watch-only, pointed at it), the
account export, and the CLI refusing a switch on a running devnet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskhold.devnet import control
from taskhold.devnet.layout import HOST, SIGNER, Layout, State, _all_ports
from taskhold.devnet.lnd_node import LndAdmin, lnd_argv
from taskhold.devnet.remote_signer import (
    signer_argv,
    signer_macaroon_path,
    wallet_password_path,
    watch_only_accounts,
    watch_only_flags,
)
from taskhold.lightning.base import LightningError

BASE = 40_000
BIN = Path("/bin-dir")


def test_the_signer_s_ports_are_its_own_inside_the_span() -> None:
    ports = _all_ports(BASE, 20)
    assert len(ports) == len(set(ports))
    signer = Layout("/x", BASE).signer
    assert (signer.grpc_port, signer.rest_port) == (BASE + 15, BASE + 16)
    assert {signer.grpc_port, signer.rest_port} <= set(ports)
    assert signer.lnd_dir == Path("/x") / SIGNER


def test_the_signer_is_a_daemon_only_under_remote_signer() -> None:
    assert SIGNER not in Layout("/x", BASE).daemon_names
    with_signer = Layout("/x", BASE, remote_signer=True)
    assert SIGNER in with_signer.daemon_names and SIGNER in with_signer.process_names
    assert SIGNER not in with_signer.node_names  # not funded, no channels, no peers


def test_the_state_file_remembers_the_signer_and_reads_an_older_one_as_without(
    tmp_path: Path,
) -> None:
    layout = Layout(tmp_path, BASE)
    state = State.new(BASE)
    state.remote_signer = True
    layout.save_state(state)
    loaded = layout.load_state()
    assert loaded is not None and loaded.remote_signer
    assert Layout.of(tmp_path, loaded).remote_signer
    older = json.loads(layout.state_path.read_text())
    del older["remote_signer"]
    layout.state_path.write_text(json.dumps(older))
    reread = layout.load_state()
    assert reread is not None and not reread.remote_signer


def test_the_signer_runs_offline_without_a_chain_backend() -> None:
    layout = Layout("/x", BASE, remote_signer=True)
    argv = signer_argv(BIN, layout.signer)
    assert "--bitcoin.node=nochainbackend" in argv
    assert "--nolisten" in argv
    assert not any(arg.startswith(("--btcd.", "--listen", "--externalip")) for arg in argv)
    assert f"--rpclisten={HOST}:{BASE + 15}" in argv
    assert f"--restlisten={HOST}:{BASE + 16}" in argv


def test_the_escrow_runs_watch_only_against_the_signer() -> None:
    layout = Layout("/x", BASE, remote_signer=True)
    state = State.new(BASE)
    escrow = layout.node("escrow")
    argv = lnd_argv(BIN, layout, state, escrow, watch_only_flags(layout))
    assert "--noseedbackup" not in argv  # its wallet is created watch-only, not from a seed
    assert "--remotesigner.enable" in argv
    assert f"--remotesigner.rpchost={HOST}:{BASE + 15}" in argv
    assert f"--remotesigner.tlscertpath={layout.signer.tls_cert_path}" in argv
    assert f"--remotesigner.macaroonpath={signer_macaroon_path(escrow)}" in argv
    assert f"--wallet-unlock-password-file={wallet_password_path(escrow)}" in argv
    assert "--noseedbackup" in lnd_argv(BIN, layout, state, layout.node("worker"))


class _FakeRest:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    async def call(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        assert (method, path) == ("GET", "/v2/wallet/accounts")
        return self.answer


async def test_the_export_turns_derivation_paths_into_watch_only_accounts() -> None:
    admin = LndAdmin(Layout("/x", BASE).signer)
    admin.rest = _FakeRest(  # type: ignore[assignment]
        {
            "accounts": [
                {"derivation_path": "m/84'/0'/0'", "extended_public_key": "vpubA"},
                {"derivation_path": "m/1017'/1'/6'", "extended_public_key": "tpubB"},
                {"name": "imported", "derivation_path": "", "extended_public_key": ""},
            ]
        }
    )
    assert await watch_only_accounts(admin) == [
        {"purpose": 84, "coin_type": 0, "account": 0, "xpub": "vpubA"},
        {"purpose": 1017, "coin_type": 1, "account": 6, "xpub": "tpubB"},
    ]
    admin.rest = _FakeRest({"accounts": []})  # type: ignore[assignment]
    with pytest.raises(LightningError, match="no accounts"):
        await watch_only_accounts(admin)


async def test_a_running_devnet_cannot_switch_its_signer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(tmp_path, BASE)
    layout.save_state(State.new(BASE))

    async def running(*_: object) -> bool:
        return True

    monkeypatch.setattr(control, "_answers", running)
    with pytest.raises(control.DevnetError, match="cannot switch"):
        await control.up(tmp_path, bin_dir=tmp_path, remote_signer=True)
