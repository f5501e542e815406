"""The folder list is the architecture: each package imports only packages in layers below its own.

``LAYERS`` is the order, bottom to top. Packages in one layer are siblings and do not import
each other either. Every import counts: at module level, inside functions (lazy imports) and
under ``if TYPE_CHECKING:`` — a name used only in annotations still ties a module to the shape
of another, so a type-only import is allowed upward only where ``EXCEPTIONS`` says so, and such
an exception never lets the same import run at import time.

A package's ``cli`` module (``keys/cli.py``, ``journal/cli.py``, ``rebuild/cli.py`` …) is the
package's face on the command line: it belongs to the top layer, beside ``taskhold.cli``, and only
that layer may import it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "taskhold"
CLI_LAYER = "command line"

LAYERS: tuple[tuple[str, frozenset[str], str], ...] = (
    ("foundation", frozenset({"errors", "settings", "logs", "waits"}),
     "refusals and faults, settings, log configuration, waits with a time limit that never"
     " lose a cancel: what every layer may use"),
    ("rules", frozenset({"tasks", "verification"}),
     "the task state machine and the proof checks: pure functions, no I/O"),
    ("codec", frozenset({"nostr"}),
     "the only package that imports nostr-sdk: kinds, entry tags, canonical JSON, signing and"
     " verifying events, proof of work, the relay client and the embedded relay; no database,"
     " no key custody"),
    ("swap crypto", frozenset({"swaps"}),
     "the offline Boltz swap cryptography: MuSig2, the taproot swap tree and addresses, swap"
     " spends; no I/O, no database, no keys held: what payments, the client and a swap server"
     " build on"),
    ("records", frozenset({"envelope", "lightning", "store", "boltz"}),
     "the signed-request envelope (no FastAPI, no database), the Lightning backends behind one"
     " protocol, the database (models, repository, migrations), the Boltz API v2 client (REST"
     " and WebSocket) and the client's durable swap records; independent of each other. The"
     " store signs each transition into the public log through its TransitionLog protocol,"
     " which the composition root fills with the log writer: no import upward"),
    ("journal", frozenset({"journal"}),
     "the operator's hash-chained security journal and its checkpoint payloads, over the store"),
    ("custody", frozenset({"keys"}),
     "key stores, the event signer and the operator key; every key use is written to the"
     " journal"),
    ("public log", frozenset({"publiclog"}),
     "the log writer and its one sign-and-queue entry point, the outbox publisher, checkpoints,"
     " the key rotation entry: above keys (it signs), store (it records) and journal (it"
     " checkpoints its head); the relay client stays in the codec, as the one user of"
     " nostr-sdk's Client"),
    ("payments", frozenset({"payments"}),
     "the Payment Coordinator: payout invoices and the pay-then-settle sequence"),
    ("engines", frozenset({"escrow", "reputation", "notify", "moderation"}),
     "hold-invoice lifecycle, the reputation indexer, notifications (NIP-17 messages, webhooks),"
     " the operator's moderation (blocked keys, delisted tasks, their signed list);"
     " independent of each other (the reputation and moderation gates are applied by the"
     " actions, never by the escrow)"),
    ("use cases", frozenset({"actions", "rebuild", "audit", "admin"}),
     "one module per write; rebuilding the projection from the log; the independent auditor"
     " (tests/audit/test_independence.py narrows it further); the operator's console (its"
     " switches in the store, its reports over the engine's margins)"),
    ("pages", frozenset({"web"}),
     "the board and the audit explorer: HTML shells and the JavaScript bundled from web/,"
     " served as files; the pages read the public API and the relays from the browser and"
     " sign with the user's own NIP-07 signer, so they import nothing of taskhold's"),
    ("http", frozenset({"api"}),
     "FastAPI routes, problem+json, rate limits, wire views"),
    ("wiring", frozenset({"services"}),
     "the composition root: builds every service once from the settings"),
    ("processes", frozenset({"server", "client", "devnet"}),
     "starting the API server, the participant client, the regtest network"),
    ("participant rails", frozenset({"onchain", "participant"}),
     "the participants' on-chain flows (submarine funding, reverse payout, the fallback) run by"
     " their own clients over the participant client and a Boltz API; taskhold never runs them;"
     " a participant's key file and own wallet for the `taskhold task` command"),
    ("demo", frozenset({"demo"}), "one task end to end against a running server"),
    (CLI_LAYER, frozenset({"cli"}), "the `taskhold` command and every package's cli module"),
)  # fmt: skip


@dataclass(frozen=True)
class Allowed:
    """An import against the order, allowed by name, with its reason."""

    importer: str
    imported: str
    type_only: bool
    reason: str


EXCEPTIONS: tuple[Allowed, ...] = (
    Allowed(
        "taskhold.api",
        "taskhold.services",
        type_only=True,
        reason="routes reach the services the composition root built through"
        " request.app.state; they name the Services type for mypy only, so the API never"
        " builds or imports the wiring",
    ),
)


@dataclass(frozen=True)
class Import:
    target: str
    line: int
    type_only: bool


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(tree: ast.AST, module: str, is_package: bool) -> list[Import]:
    """Every ``taskhold.*`` import in ``tree``, wherever it is, relative ones resolved."""
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(a.name, node.lineno, type_only) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
                names = [f"{target}.{a.name}" for a in node.names] if not node.module else []
                found.append(Import(target, node.lineno, type_only))
                # ``from . import routes_x`` imports sibling modules, not the package only
                found.extend(Import(n, node.lineno, type_only) for n in names)
            elif node.module:
                found.append(Import(node.module, node.lineno, type_only))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return [i for i in found if i.target.startswith("taskhold.")]


def module_map(root: Path = PACKAGE) -> dict[str, list[Import]]:
    """``{module: its taskhold imports}`` for every module under ``root``."""
    return {
        _module_name(path, root): _imports_of(
            ast.parse(path.read_text()), _module_name(path, root), path.name == "__init__.py"
        )
        for path in sorted(root.rglob("*.py"))
        if path != root / "__init__.py"  # the map of packages, a docstring only
    }


def package_of(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def layer_of(module: str) -> int:
    if module.split(".")[-1] == "cli":
        return len(LAYERS) - 1
    package = package_of(module)
    for index, (_name, packages, _why) in enumerate(LAYERS):
        if package in packages:
            return index
    raise LookupError(f"{module}: package {package!r} is in no layer of LAYERS")


def _excepted(module: str, imp: Import, exceptions: Iterable[Allowed]) -> Allowed | None:
    for exc in exceptions:
        if (
            (module == exc.importer or module.startswith(exc.importer + "."))
            and (imp.target == exc.imported or imp.target.startswith(exc.imported + "."))
            and (imp.type_only or not exc.type_only)
        ):
            return exc
    return None


def violations(
    modules: Mapping[str, Iterable[Import]], exceptions: Iterable[Allowed] = EXCEPTIONS
) -> list[str]:
    """One line per import that does not point to a lower layer (or to its own package)."""
    found = []
    for module, imports in modules.items():
        here = layer_of(module)
        for imp in imports:
            if package_of(imp.target) == package_of(module) and (
                imp.target.split(".")[-1] != "cli" or module.split(".")[-1] == "cli"
            ):
                continue
            there = layer_of(imp.target)
            if there < here or (there == here == len(LAYERS) - 1):
                continue
            if _excepted(module, imp, exceptions) is None:
                kind = "type-only import" if imp.type_only else "import"
                found.append(
                    f"{module}:{imp.line} {kind} of {imp.target} ({LAYERS[here][0]} ->"
                    f" {LAYERS[there][0]})"
                )
    return found


def test_every_package_has_a_layer() -> None:
    packages = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" and p.stem != "__init__"}
    packages |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    placed = set().union(*(members for _name, members, _why in LAYERS))
    assert packages == placed


def test_the_top_package_is_only_its_map() -> None:
    assert _imports_of(ast.parse((PACKAGE / "__init__.py").read_text()), "taskhold", True) == []


def test_each_package_imports_only_layers_below_it() -> None:
    assert violations(module_map()) == []


def test_every_exception_is_still_needed_and_reasoned() -> None:
    modules = module_map()
    for exc in EXCEPTIONS:
        assert exc.reason.strip()
        assert violations(modules, [e for e in EXCEPTIONS if e is not exc]) != [], exc


def test_the_checker_finds_imports_everywhere_in_a_module() -> None:
    source = """
from typing import TYPE_CHECKING
from taskhold.errors import Refusal
from . import views
if TYPE_CHECKING:
    from taskhold.services import Services
def f():
    import taskhold.actions.pipeline
"""
    found = _imports_of(ast.parse(source), "taskhold.api.routes_tasks", is_package=False)
    assert [(i.target, i.type_only) for i in found] == [
        ("taskhold.errors", False),
        ("taskhold.api", False),
        ("taskhold.api.views", False),
        ("taskhold.services", True),
        ("taskhold.actions.pipeline", False),
    ]


@pytest.mark.parametrize(
    ("module", "target", "type_only"),
    [
        ("taskhold.store.repo", "taskhold.publiclog.writer", False),  # upward, at run time
        ("taskhold.store.repo", "taskhold.publiclog.writer", True),  # upward, for types only
        ("taskhold.escrow.release", "taskhold.reputation.gate", False),  # a sibling
        ("taskhold.api.info", "taskhold.services", False),  # an exception is for types only
        ("taskhold.keys.operator", "taskhold.keys.cli", False),  # a cli module is the top
        ("taskhold.nostr.relays", "taskhold.store", False),  # the codec has no database
    ],
)
def test_a_planted_upward_import_is_caught(module: str, target: str, type_only: bool) -> None:
    modules = {**module_map(), module: [Import(target, 1, type_only)]}
    assert len(violations(modules)) == 1


def test_downward_imports_and_the_named_exception_pass() -> None:
    modules = {
        "taskhold.api.deps": [Import("taskhold.services", 9, True)],
        "taskhold.actions.pipeline": [Import("taskhold.tasks.machine", 1, False)],
        "taskhold.keys.cli": [Import("taskhold.publiclog.rotation", 1, False)],
    }
    assert violations(modules) == []


def test_a_module_in_no_layer_is_refused() -> None:
    with pytest.raises(LookupError, match="no layer"):
        violations({"taskhold.newthing": [Import("taskhold.errors", 1, False)]})


SIGNERS = {
    "taskhold.publiclog.writer": "sign_and_queue: every event the operator publishes",
    "taskhold.keys.signer": "LocalSigner, the signer boundary, over the key it holds",
    "taskhold.nostr.signing": "NostrKeys over nostr-sdk",
    "taskhold.client": "a participant signing its own request, which is sent, not queued",
    "taskhold.notify.delivery": "a webhook delivery: POSTed to a registered URL, never published",
}


def _calls(tree: ast.AST, name: str) -> int:
    return sum(
        isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == name)
            or (isinstance(node.func, ast.Name) and node.func.id == name)
        )
        for node in ast.walk(tree)
    )


def test_one_function_signs_and_queues_what_the_operator_publishes() -> None:
    """Outside the writer nobody signs an event or adds to the outbox: publishing is one
    function, so every event commits with what it says and meets the relays' size limit."""
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path, PACKAGE)
        tree = ast.parse(path.read_text())
        if module != "taskhold.publiclog.writer":
            assert _calls(tree, "OutboxRow") == 0, f"{module} queues an event itself"
        if module not in SIGNERS:
            assert _calls(tree, "sign_event") == 0, f"{module} signs an event itself"
