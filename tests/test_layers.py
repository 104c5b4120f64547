"""The package's folders are its layers: an import map of ``src/smoothsal`` built with ``ast``.

Every ``import``/``from ... import`` in every module counts, at module level and inside functions
(a function-level import is a dependency too, only a later one), relative ones included. An import
of ``smoothsal.a.b`` is an edge to the module ``smoothsal.a.b``; ``from smoothsal.a import b`` is
an edge to ``smoothsal.a.b`` when that is a module, else to ``smoothsal.a``. Importing a submodule
also runs its parent packages' ``__init__``, but those implicit edges are left out: they would tie
every module to the package root.

The rules: (a) no circle between modules, (b) no import from a lower layer to a higher one
(:data:`LAYERS`, bottom to top), (c) the library (every layer below the harness) never imports
:mod:`smoothsal.studies` or :mod:`smoothsal.cli`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "smoothsal"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE

#: Layers, bottom to top: a module may import only from its own layer or lower ones. A module's
#: layer is that of the longest prefix that names it or a package above it.
LAYERS: tuple[tuple[str, ...], ...] = (
    # 0: private foundations and the public leaf modules
    ("smoothsal._core", "smoothsal.noise", "smoothsal.maps"),
    # 1: how rows run (and the deprecated aliases of its old root modules)
    ("smoothsal.execution", "smoothsal.batching", "smoothsal.fusion", "smoothsal.allocator", "smoothsal.precision"),
    # 2: models and data
    ("smoothsal.models", "smoothsal.datasets"),
    # 3: attribution methods and their Captum adapters
    ("smoothsal.methods", "smoothsal.interop"),
    # 4: smoothing any method; every method's name and settings
    ("smoothsal.smoothing", "smoothsal.smoothing_spec", "smoothsal.registry", "smoothsal.weight_noise"),
    # 5: metrics, rendering, and the package root that gathers the library's public names (the
    # root's own module only: a new module at the root must be given its layer here)
    ("smoothsal.metrics", "smoothsal.render", "smoothsal"),
    # 6: the harness
    ("smoothsal.studies", "smoothsal.cli"),
)
HARNESS = LAYERS[-1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` (the module at ``path``) imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                child = f"{origin}.{alias.name}"
                found.add(child if child in known else origin)
    return {target for target in found if target in known and target != name}


def import_map() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def layer_of(name: str) -> int:
    best, level = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            below = prefix != PACKAGE and name.startswith(prefix + ".")
            if (name == prefix or below) and len(prefix) > best:
                best, level = len(prefix), index
    if level < 0:
        raise AssertionError(f"{name} is in no layer of LAYERS")
    return level


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph`` as ``[a, b, ..., a]``, or ``None`` (depth-first search, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_import_map_sees_module_and_function_level_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "smoothsal"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from smoothsal.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("from ..a import f\nimport smoothsal.sub\n")
    known = {"smoothsal", "smoothsal.a", "smoothsal.sub", "smoothsal.sub.b"}
    assert imports_of("smoothsal.a", pkg / "a.py", known) == {"smoothsal.sub.b"}
    assert imports_of("smoothsal.sub", pkg / "sub" / "__init__.py", known) == {"smoothsal.sub.b"}
    assert imports_of("smoothsal.sub.b", pkg / "sub" / "b.py", known) == {"smoothsal.a", "smoothsal.sub"}
    assert find_cycle({"x": {"y"}, "y": {"z"}, "z": {"x"}}) == ["x", "y", "z", "x"]
    assert find_cycle({"x": {"y"}, "y": {"z"}, "z": set()}) is None


def test_every_module_has_a_layer() -> None:
    missing = []
    for name in modules():
        try:
            layer_of(name)
        except AssertionError as err:
            missing.append(str(err))
    assert not missing, "\n".join(missing)


def test_the_package_has_no_import_circles() -> None:
    cycle = find_cycle(import_map())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = sorted(
        f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
        for name, targets in import_map().items()
        for target in targets
        if layer_of(target) > layer_of(name)
    )
    assert not upward, "upward imports:\n" + "\n".join(upward)


@pytest.mark.parametrize("harness", HARNESS)
def test_the_library_never_imports_the_harness(harness: str) -> None:
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in import_map().items()
        if layer_of(name) < len(LAYERS) - 1
        for target in targets
        if target == harness or target.startswith(harness + ".")
    )
    assert not offenders, "\n".join(offenders)


# ---- names that moved keep working ---------------------------------------------------------------
#: deprecated alias module -> the modules its names moved to
DEPRECATED = {
    "smoothsal.batching": ("smoothsal.execution.memory", "smoothsal.execution.measure"),
    "smoothsal.fusion": ("smoothsal.execution.folding",),
    "smoothsal.allocator": ("smoothsal.execution.allocator",),
    "smoothsal.precision": ("smoothsal.execution.precision",),
}


def test_the_library_imports_no_deprecated_alias() -> None:
    users = sorted(
        f"{name} imports {target}"
        for name, targets in import_map().items()
        for target in targets
        if target in DEPRECATED
    )
    assert not users, "\n".join(users)


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("smoothsal.batching", "set_max_memory", "smoothsal.execution.memory"),
        ("smoothsal.batching", "row_memory", "smoothsal.execution.measure"),
        ("smoothsal.batching", "memory_budget", "smoothsal.execution.memory"),
        ("smoothsal.fusion", "folded", "smoothsal.execution.folding"),
        ("smoothsal.allocator", "keep_freed_memory", "smoothsal.execution.allocator"),
        ("smoothsal.precision", "MixedPrecision", "smoothsal.execution.precision"),
    ],
)
def test_a_deprecated_alias_warns_with_the_new_place_and_gives_the_same_object(old: str, name: str, new: str) -> None:
    import importlib

    alias, home = importlib.import_module(old), importlib.import_module(new)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} is deprecated: it moved to {new}\.{name}") as caught:
        value = getattr(alias, name)
    assert value is getattr(home, name)
    assert caught[0].filename == __file__  # the warning points at the caller
    assert name in dir(alias)
    with pytest.raises(AttributeError, match="no_such_name"):
        alias.no_such_name  # noqa: B018


def test_the_package_attributes_and_from_imports_of_moved_modules_warn() -> None:
    import smoothsal as ss
    from smoothsal.execution import folding, memory

    with pytest.warns(DeprecationWarning, match="smoothsal.execution.folding.set_folding"):
        assert ss.fusion.set_folding is folding.set_folding
    with pytest.warns(DeprecationWarning, match="smoothsal.execution.memory.memory_budget"):
        from smoothsal.batching import memory_budget
    assert memory_budget is memory.memory_budget
    with pytest.raises(AttributeError):
        ss.no_such_module  # noqa: B018


def test_documented_model_modules_and_preserve_model_keep_their_names_without_a_warning() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import smoothsal as ss
        import smoothsal.hubs
        import smoothsal.methods
        import smoothsal.zoo
        from smoothsal.execution.guard import preserve_model
        from smoothsal.models import hubs, zoo
        from smoothsal.zoo import load_model

        assert ss.zoo is zoo and smoothsal.zoo is zoo and load_model is zoo.load_model
        assert ss.hubs is hubs and smoothsal.hubs is hubs
        assert ss.preserve_model is preserve_model and smoothsal.methods.preserve_model is preserve_model


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """The import map leaves out the parent packages an import runs; a circle through a package's
    ``__init__`` shows only at run time, and only when a module is the first one imported. The
    library is always entered through the package root, so each module the root does not import
    (the harness, the deprecated aliases) is imported first here, after forgetting the others."""
    import subprocess
    import sys

    code = (
        "import importlib, sys\n"
        "import smoothsal\n"
        "base = set(sys.modules)\n"
        "failed = []\n"
        f"for name in {sorted(modules())!r}:\n"
        "    if name in base:\n"
        "        continue\n"
        "    for loaded in [m for m in sys.modules if m.startswith('smoothsal.') and m not in base]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as err:\n"
        "        failed.append(f'{name}: {type(err).__name__}: {err}')\n"
        "print('\\n'.join(failed))\n"
    )
    proc = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
                          capture_output=True, text=True, timeout=300, cwd=SOURCE.parent)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "", proc.stdout
