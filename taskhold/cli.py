"""The ``taskhold`` command."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from taskhold.settings import Settings

__all__ = ["cli", "main"]

cli = typer.Typer(
    no_args_is_help=True,
    help="Non-custodial escrow for tasks on Lightning.",
    # Usage errors as click prints them: rich draws them in a panel wrapped to the terminal,
    # which splits paths and commands a reader has to copy (or a script to find).
    rich_markup_mode=None,
)
console = Console(stderr=True, soft_wrap=True)
"""Messages are never wrapped to the terminal width, for the same reason."""

KeystoreOption = Annotated[
    str | None,
    typer.Option("--keystore", help="file or pkcs11 (an HSM; SoftHSM2 in development)"),
]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="where the database and key files live")
]
Relays = Annotated[
    list[str] | None,
    typer.Option(
        "--relay",
        help="relay URL the public log goes to (repeatable); none: an embedded relay",
    ),
]


def _settings(data_dir: Path | None, config: Path | None = None, **overrides: object) -> Settings:
    """Flags over TASKHOLD_* variables over the config file (KEY=value lines) over defaults."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    if config is not None and not config.is_file():
        raise typer.BadParameter(f"no such file: {config}", param_hint="--config")
    try:
        return Settings(_env_file=config, **values)  # type: ignore[arg-type]
    except ValidationError as invalid:
        problems = "; ".join(str(error["msg"]) for error in invalid.errors())
        raise typer.BadParameter(problems, param_hint="settings") from None


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    data_dir: DataDir = None,
    lightning: Annotated[
        str | None, typer.Option(help="sim, lnd or ldk (embedded LDK Node)")
    ] = None,
    lnd_pool: Annotated[
        str | None,
        typer.Option(
            "--lnd-pool",
            help="several lnd escrow nodes as one (--lightning lnd): comma-separated [FILE#]NODE,"
            " FILE a connection file (default TASKHOLD_LND_CONNECTION_FILE)",
        ),
    ] = None,
    relay: Relays = None,
    keystore: KeystoreOption = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="JSON log lines")] = False,
    sim_routes: Annotated[
        bool | None,
        typer.Option(
            "--sim-routes",
            help="serve the simulator's wallet and mining routes /v1/sim/* (demos, tests)",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="a file of TASKHOLD_NAME=value lines (env-file syntax)"),
    ] = None,
) -> None:
    """Run the API and the escrow engine. Settings come from flags, TASKHOLD_* variables and
    the --config file, in that order of precedence."""
    from taskhold.logs import configure_logging
    from taskhold.server import api_server
    from taskhold.services import build_services
    from taskhold.store.alone import SQLiteTaken, one_process_on_sqlite

    configure_logging(json=log_json)
    settings = _settings(
        data_dir,
        config,
        host=host,
        port=port,
        lightning=lightning,
        lnd_pool=lnd_pool,
        relays=relay or None,
        keystore=keystore,
        sim_routes_enabled=sim_routes,
    )

    async def run() -> None:
        services = await build_services(settings, embedded_relay=True)
        console.print(
            f"taskhold on http://{settings.host}:{settings.port} (docs at /docs), lightning="
            f"{settings.lightning}, database={settings.resolved_database_url.split('://')[0]}"
        )
        where = "embedded relay" if services.embedded_relay is not None else "relays"
        console.print(f"public log: {where} {', '.join(services.settings.relays)}")
        try:
            await api_server(services, settings.host, settings.port, log_level="info").serve()
        finally:
            await services.close()

    try:
        with one_process_on_sqlite(settings.resolved_database_url):
            asyncio.run(run())
    except SQLiteTaken as taken:
        raise SystemExit(str(taken)) from None


@cli.command()
def demo(
    data_dir: DataDir = None,
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help="paid, refund, split, squatter, reject-overturned, cooperative-cancel, private,"
            " paused-intake, moderation, jurisdiction;"
            " on the simulator only: hostile-payout, renewal, milestones, task-cli (the"
            " participants' `taskhold task` commands); on the devnet only:"
            " onchain, pool (a devnet up with --escrow-nodes 2)",
        ),
    ] = "paid",
    refund: Annotated[
        bool, typer.Option("--refund", help="cancel after funding: --scenario refund")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    relay: Relays = None,
    keystore: KeystoreOption = None,
    lightning: Annotated[
        str, typer.Option("--lightning", help="sim (embedded) or devnet (the regtest lnd nodes)")
    ] = "sim",
    devnet_dir: Annotated[
        Path | None, typer.Option("--devnet-dir", help="data dir of `taskhold devnet up`")
    ] = None,
) -> None:
    """Drive one task from creation to PAID over HTTP, on the embedded defaults (or the
    devnet), and publish its log to the relays (an embedded one unless ``--relay`` is given)."""
    from taskhold.demo import SCENARIOS, SIM_ONLY_SCENARIOS, DemoError, dump, run_demo

    if refund and scenario not in ("paid", "refund"):
        raise typer.BadParameter("--refund is --scenario refund", param_hint="--scenario")
    scenario = "refund" if refund else scenario
    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"use one of {', '.join(SCENARIOS)}", param_hint="--scenario")
    devnet = _devnet_dir(lightning, devnet_dir)
    if devnet is not None and scenario in SIM_ONLY_SCENARIOS:
        raise typer.BadParameter(f"{scenario} runs on sim only", param_hint="--lightning")
    from taskhold.logs import configure_logging

    configure_logging("WARNING")
    directory = data_dir or Path(tempfile.mkdtemp(prefix="taskhold-demo-"))
    try:
        result = asyncio.run(
            run_demo(
                directory,
                scenario=scenario,
                as_json=as_json,
                console=console,
                relays=relay,
                keystore=keystore or "file",
                devnet_dir=devnet,
            )
        )
    except DemoError as exc:
        console.print(f"[red]demo failed:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    sys.stdout.write((json.dumps(result) if as_json else dump(result)) + "\n")
    expected = "REFUNDED" if scenario in ("refund", "cooperative-cancel") else "PAID"
    if result["final_state"] != expected:
        raise typer.Exit(1)


def _devnet_dir(lightning: str, devnet_dir: Path | None) -> Path | None:
    if lightning == "sim":
        return None
    if lightning != "devnet":
        raise typer.BadParameter("use sim or devnet", param_hint="--lightning")
    from taskhold.devnet.layout import default_data_dir

    return devnet_dir or default_data_dir()


def _mount_key_custody() -> None:
    from taskhold.journal.cli import audit_log_app
    from taskhold.keys.cli import keys_app

    cli.add_typer(keys_app, name="keys", help="The key store: init, status, rotate")
    cli.add_typer(audit_log_app, name="audit-log", help="The tamper-evident audit log")


_mount_key_custody()


def _mount_devnet() -> None:
    try:
        from taskhold.devnet.cli import devnet_app
    except ImportError:
        return
    cli.add_typer(
        devnet_app, name="devnet", help="A local regtest network: btcd, four lnd, a swap server"
    )


_mount_devnet()


def _mount_log_commands() -> None:
    from taskhold.audit.cli import audit_command
    from taskhold.audit.disclosure import disclosure_command
    from taskhold.rebuild.cli import rebuild_command

    cli.command("audit")(audit_command)
    cli.command("disclosure")(disclosure_command)
    cli.command("rebuild")(rebuild_command)


_mount_log_commands()


def _mount_webhooks() -> None:
    from taskhold.notify.cli import webhooks_app

    cli.add_typer(webhooks_app, name="webhooks", help="Signed webhooks: add, list, remove")


_mount_webhooks()


def _mount_swaps() -> None:
    from taskhold.onchain.cli import swaps_app

    cli.add_typer(swaps_app, name="swaps", help="Your Boltz swaps: list, refund, claim")


_mount_swaps()


def _mount_task() -> None:
    from taskhold.participant.cli import task_app

    cli.add_typer(task_app, name="task")


_mount_task()


def _mount_admin() -> None:
    from taskhold.admin.cli import admin_app

    cli.add_typer(admin_app, name="admin", help="The operator's console: intake, stuck, reconcile")


_mount_admin()


def _mount_moderation() -> None:
    from taskhold.moderation.cli import moderate_app

    cli.add_typer(moderate_app, name="moderate", help="Block keys, delist tasks")


_mount_moderation()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
