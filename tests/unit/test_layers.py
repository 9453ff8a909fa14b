"""The layers stay honest: routes parse, call a service and render; the engine is a library."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "faceplane"

# What an HTTP layer (native routes and every vendor package) must not reach for.
HTTP_FORBIDDEN = ("sqlalchemy", "PIL", "cv2", "numpy", "faceplane.store", "faceplane.engine")
# What the pure libraries must not depend on.
LIBRARY_FORBIDDEN = ("faceplane.api", "faceplane.compat", "faceplane.store", "faceplane.tasks")


def _modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (SRC / pkg).rglob("*.py"))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module imported at run time (type-only imports under TYPE_CHECKING excluded)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (imp for child in node.orelse for imp in _runtime_imports(child))
            continue
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        yield from _runtime_imports(node)


def _hits(path: Path, forbidden: tuple[str, ...]) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return sorted(
        {
            f"{path.relative_to(SRC)}:{line} imports {name}"
            for line, name in _runtime_imports(tree)
            if any(name == f or name.startswith(f + ".") for f in forbidden)
        }
    )


@pytest.mark.parametrize("path", _modules("api", "compat"), ids=lambda p: str(p.relative_to(SRC)))
def test_http_layers_import_no_database_imaging_or_engine(path: Path) -> None:
    assert _hits(path, HTTP_FORBIDDEN) == []


@pytest.mark.parametrize(
    "path", _modules("engine", "effects"), ids=lambda p: str(p.relative_to(SRC))
)
def test_engine_and_effects_are_a_library(path: Path) -> None:
    assert _hits(path, LIBRARY_FORBIDDEN) == []


def _route_handlers(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for dec in node.decorator_list:
                call = dec.func if isinstance(dec, ast.Call) else dec
                if isinstance(call, ast.Attribute) and call.attr in {
                    "get",
                    "post",
                    "put",
                    "patch",
                    "delete",
                    "api_route",
                }:
                    yield node
                    break


@pytest.mark.parametrize("path", _modules("api", "compat"), ids=lambda p: str(p.relative_to(SRC)))
def test_route_handlers_are_async(path: Path) -> None:
    """A sync handler runs on FastAPI's own hidden thread pool, outside the runtime's bounds."""
    tree = ast.parse(path.read_text(), str(path))
    sync = [n.name for n in _route_handlers(tree) if isinstance(n, ast.FunctionDef)]
    assert sync == []


def test_blocking_work_has_one_way_off_the_event_loop() -> None:
    """Only the runtime's bounded pools run blocking work: no ad-hoc thread hand-offs."""
    offenders = []
    for path in _modules("."):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            name = (
                node.attr
                if isinstance(node, ast.Attribute)
                else node.id
                if isinstance(node, ast.Name)
                else None
            )
            if name in {"run_in_threadpool", "to_thread", "BlockingDep"} or (
                name == "run_in_executor" and path != SRC / "runtime.py"
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {name}")
    assert offenders == []


TENANT_PARAMETERS = {"company_id", "company", "owner", "tenant"}


def test_no_function_defaults_the_tenant() -> None:
    """Every caller names the company it acts for: a tenant parameter has no default (an
    `owner="default"` once put the CLI's collections in a company nobody could see), and no
    call passes a made-up tenant such as "default". (The engine only counts per company.)"""
    offenders = []
    for path in (p for p in _modules(".") if p.relative_to(SRC).parts[0] != "engine"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                positional = a.posonlyargs + a.args
                with_defaults = positional[len(positional) - len(a.defaults) :]
                with_defaults += [
                    arg for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d
                ]
                offenders += [
                    f"{path.relative_to(SRC)}:{node.lineno} {node.name}({arg.arg}=...)"
                    for arg in with_defaults
                    if arg.arg in TENANT_PARAMETERS
                ]
            elif isinstance(node, ast.Call):
                offenders += [
                    f"{path.relative_to(SRC)}:{node.lineno} {kw.arg}={kw.value.value!r}"
                    for kw in node.keywords
                    if kw.arg in TENANT_PARAMETERS
                    and isinstance(kw.value, ast.Constant)
                    and isinstance(kw.value.value, str)
                ]
    assert offenders == []


@pytest.mark.parametrize("path", _modules("api", "compat"), ids=lambda p: str(p.relative_to(SRC)))
def test_http_layers_reach_storage_only_through_services(path: Path) -> None:
    """No raw SQL or file access behind the import ban: a route that holds the runtime does not
    open its database, blobs or indexes itself (`rt.store.db.connect()` + a SQL string), nor
    reach the store at all: services take the runtime."""
    tree = ast.parse(path.read_text(), str(path))
    assert _storage_reaches(tree, str(path.relative_to(SRC))) == []


def _names_store(annotation: ast.expr | None) -> bool:
    """Whether an annotation names `Store` (bare, dotted, quoted or in a union)."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return False
    return any(
        (isinstance(n, ast.Name) and n.id == "Store")
        or (isinstance(n, ast.Attribute) and n.attr == "Store")
        for n in ast.walk(annotation)
    )


def _public_store_parameters(tree: ast.Module, where: str) -> list[str]:
    """Public functions (and public methods of public classes) of a module that take a
    `Store` (or a parameter called `store`) instead of the runtime."""
    found = []

    def check(fn: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str) -> None:
        a = fn.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
            if arg is not None and (arg.arg == "store" or _names_store(arg.annotation)):
                found.append(f"{where}:{fn.lineno} {qualname}({arg.arg})")

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not node.name.startswith("_"):
                check(node, node.name)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    not item.name.startswith("_") or item.name == "__init__"
                ):
                    check(item, f"{node.name}.{item.name}")
    return found


def test_the_store_parameter_check_finds_a_seeded_offender() -> None:
    seeded = ast.parse(
        "from faceplane.store import Store\n"
        "def fine(rt: Runtime, company_id: str) -> None: ...\n"
        "def _private_helper(store: Store) -> None: ...\n"
        "def bare(store: Store, company_id: str) -> None: ...\n"
        "def quoted(x: int, db: 'Store | None') -> None: ...\n"
        "async def dotted(*, s: faceplane.store.Store) -> None: ...\n"
        "def untyped(store, company_id): ...\n"
        "class Thing:\n"
        "    def __init__(self, store: Store) -> None: ...\n"
        "    def _hidden(self, store: Store) -> None: ...\n"
    )
    assert _public_store_parameters(seeded, "seed.py") == [
        "seed.py:4 bare(store)",
        "seed.py:5 quoted(db)",
        "seed.py:6 dotted(s)",
        "seed.py:7 untyped(store)",
        "seed.py:9 Thing.__init__(store)",
    ]


@pytest.mark.parametrize("path", _modules("services"), ids=lambda p: str(p.relative_to(SRC)))
def test_services_take_the_runtime_not_a_store(path: Path) -> None:
    """Issue 10 §3: a service takes the runtime (and the caller's company id), never the bare
    store; store-level code a service shares keeps it in a private helper."""
    tree = ast.parse(path.read_text(), str(path))
    assert _public_store_parameters(tree, str(path.relative_to(SRC))) == []


def _runtime_not_first(tree: ast.Module, where: str) -> list[str]:
    """Public functions of a module that take the runtime other than as their first
    parameter."""
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name[0] == "_":
            continue
        a = node.args
        found += [
            f"{where}:{node.lineno} {node.name}({arg.arg})"
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs][1:]
            if arg.annotation is not None
            and any(isinstance(n, ast.Name) and n.id == "Runtime" for n in ast.walk(arg.annotation))
        ]
    return found


def test_the_runtime_first_check_finds_a_seeded_offender() -> None:
    seeded = ast.parse(
        "def fine(rt: Runtime, company_id: str) -> None: ...\n"
        "def late(field: str, rt: Runtime) -> None: ...\n"
        "def _private(field: str, rt: Runtime) -> None: ...\n"
    )
    assert _runtime_not_first(seeded, "seed.py") == ["seed.py:2 late(rt)"]


@pytest.mark.parametrize("path", _modules("services"), ids=lambda p: str(p.relative_to(SRC)))
def test_services_take_the_runtime_first(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    assert _runtime_not_first(tree, str(path.relative_to(SRC))) == []


# The CLI commands that work on a tenant's data are service callers like the routes: they open
# the runtime and call services. `cli_db` is the exception: it upgrades and inspects the schema
# itself, which has to work before (and without) a runtime, since opening one upgrades it.
CLI_MODULES = sorted(p for p in SRC.glob("cli*.py") if p.name != "cli_db.py")
CLI_FORBIDDEN = ("sqlalchemy", "faceplane.store")


def _storage_reaches(tree: ast.AST, where: str) -> list[str]:
    return sorted(
        f"{where}:{node.lineno} .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in {"store", "db", "blobs", "indexes", "exec_driver_sql"}
    )


def test_the_storage_check_finds_a_seeded_offender() -> None:
    seeded = ast.parse(
        "def cmd(rt):\n"
        "    with rt.store.db.connect() as conn:\n"
        "        conn.exec_driver_sql('select 1')\n"
        "    rt.store.indexes.save_all()\n"
    )
    assert _storage_reaches(seeded, "seed.py") == [
        "seed.py:2 .db",
        "seed.py:2 .store",
        "seed.py:3 .exec_driver_sql",
        "seed.py:4 .indexes",
        "seed.py:4 .store",
    ]


@pytest.mark.parametrize("path", CLI_MODULES, ids=lambda p: p.name)
def test_cli_commands_reach_storage_only_through_services(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    assert _hits(path, CLI_FORBIDDEN) == []
    assert _storage_reaches(tree, path.name) == []


def _queued_on_a_pool(tree: ast.AST, where: str) -> list[str]:
    """`rt.run_*(hub.queued, ...)`: the hub hands task ids to its notifier thread and returns
    at once, so every route family calls it directly; a pool slot would only wait in line."""
    return sorted(
        f"{where}:{node.lineno} {node.func.attr}(hub.queued)"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr.startswith("run_")
        and node.args
        and isinstance(node.args[0], ast.Attribute)
        and node.args[0].attr == "queued"
    )


def test_the_queued_check_finds_a_seeded_offender() -> None:
    seeded = ast.parse(
        "async def route(rt, hub, ids):\n"
        "    hub.queued(ids)\n"
        "    await rt.run_io(hub.queued, ids)\n"
    )
    assert _queued_on_a_pool(seeded, "seed.py") == ["seed.py:3 run_io(hub.queued)"]


def test_route_families_hand_new_tasks_to_the_hub_alike() -> None:
    offenders = []
    for path in _modules("api", "compat"):
        tree = ast.parse(path.read_text(), str(path))
        offenders += _queued_on_a_pool(tree, str(path.relative_to(SRC)))
    assert offenders == []
