"""The package's structure: imports point one way, no cycles, no mxnet where none belongs, no
import hidden inside a function, small modules and functions. Read from the source with `ast`
(what the code says), plus one real import for mxnet."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "siamese"
SUBPACKAGES = ("config", "formats", "data", "models", "losses", "scoring", "identification",
               "eval", "train", "export", "service", "commands")
# What each room may import from the package, besides itself, `siamese.errors` and the package
# root (`siamese.__version__`): a room, or one module of a room ("losses.distances"). The
# commands may import anything; nothing imports them but the aliases at the root.
MAY_IMPORT = {
    "errors": set(),
    "config": set(),
    "formats": set(),
    "data": {"config", "formats"},
    "models": {"config", "formats"},
    "losses": {"config", "formats"},
    "scoring": {"formats", "data", "models", "losses.distances"},
    "identification": {"config", "formats", "data", "scoring"},
    "eval": {"config", "formats", "data", "scoring", "identification"},
    "train": {"config", "formats", "data", "models", "losses", "scoring", "eval"},
    "export": {"config", "formats", "data", "models", "scoring", "eval"},
    "service": {"config", "formats", "data", "scoring", "identification"},
}
FRONT_DOOR_ROOMS = {"commands"}
# `python -m siamese.export`: an alias of the export command that must live inside the room.
ALIASES_IN_ROOMS = {"siamese.export.__main__"}
# The package root holds the package's face, the errors every room raises, and aliases.
ROOT_MODULES = {"siamese", "siamese.__main__", "siamese.errors"}
ALIAS_MAX_LINES = 12
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def modules() -> dict:
    """{dotted module name: Path} of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def resolve(module: str, path: Path, node: ast.ImportFrom) -> list:
    """The package modules an ImportFrom names (a name may itself be a module)."""
    if node.level:
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("siamese"):
        return []
    names = [f"{target}.{a.name}" for a in node.names]
    known = modules()
    return [n for n in names if n in known] or [target]


def imports(module: str, path: Path) -> tuple:
    """(package modules imported at module level, (line, name) imported inside functions)."""
    tree = ast.parse(path.read_text())
    top, inner = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found = resolve(module, path, node)
        elif isinstance(node, ast.Import):
            found = [a.name for a in node.names if a.name.startswith("siamese")]
        else:
            continue
        (top if node.col_offset == 0 else inner).extend((node.lineno, f) for f in found)
    return [f for _, f in top], inner


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict:
    return {m: set(imports(m, p)[0]) - {m} for m, p in modules().items()}


def test_every_module_imports():
    for name in modules():
        if not name.endswith("__main__"):
            importlib.import_module(name)


def test_subpackages_say_what_lives_there_and_what_they_may_import():
    for name in SUBPACKAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and "Lives here" in doc and "May import" in doc, name


def allowed(mine: str, target: str) -> bool:
    """May a module of room `mine` import the package module `target`?"""
    other = room(target)
    if other in ("", mine, "errors"):
        return True
    within = ".".join(target.split(".")[1:3])  # "losses.distances"
    return other in MAY_IMPORT[mine] or within in MAY_IMPORT[mine]


def test_imports_point_one_way():
    wrong = []
    for module, targets in graph().items():
        mine = room(module)
        if mine in FRONT_DOOR_ROOMS or module in ALIASES_IN_ROOMS or aliases_at_root(module) \
                or module in ("siamese", "siamese.__main__"):
            continue  # the commands, their aliases, the face and `python -m siamese`
        assert mine in MAY_IMPORT, f"{module}: a room test_structure does not know"
        wrong += [f"{module} -> {t}" for t in targets if not allowed(mine, t)]
    assert not wrong, wrong


def test_the_rule_table_catches_a_planted_wrong_import():
    assert not allowed("eval", "siamese.losses.pair")  # losses.distances only
    assert allowed("eval", "siamese.scoring.scores")
    assert allowed("scoring", "siamese.losses.distances")
    assert not allowed("identification", "siamese.eval.metrics")
    assert not allowed("train", "siamese.export.writer")


def aliases_at_root(module: str) -> bool:
    """True for a module at the package root that is not the face, __main__ or errors."""
    return module.count(".") == 1 and module not in ROOT_MODULES and \
        module.split(".")[1] not in SUBPACKAGES


def test_no_tool_at_the_package_root_only_aliases_of_the_commands():
    for module, path in modules().items():
        if not (aliases_at_root(module) or module in ALIASES_IN_ROOMS):
            continue
        text = path.read_text()
        assert text.count("\n") <= ALIAS_MAX_LINES, f"{path}: more than an alias"
        targets = set(imports(module, path)[0])
        assert len(targets) == 1 and room(next(iter(targets))) == "commands", (path, targets)
        assert "def " not in text and "class " not in text, path


def test_every_command_is_a_subcommand_of_the_console_command():
    from siamese.commands.main import TOOLS

    tools = {m.split(".")[2] for m in modules() if room(m) == "commands" and m.count(".") > 1} - {
        "main", "common", "pipeline", "__main__"}
    assert tools <= set(TOOLS), tools - set(TOOLS)


def find_cycle(g: dict) -> list:
    """A list of modules forming an import cycle, or []."""
    state: dict = {}
    stack: list = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(g.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        state[m] = 2
        stack.pop()
        return []

    for m in sorted(g):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return []


def test_no_import_cycles():
    assert find_cycle(graph()) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    g = graph()
    g["siamese.formats.atomic"] = g["siamese.formats.atomic"] | {"siamese.train.fit"}
    cycle = find_cycle(g)
    assert cycle and cycle[0] == cycle[-1] and "siamese.train.fit" in cycle


def test_no_package_import_hidden_in_a_function():
    hidden = [(m, line, t) for m, p in modules().items() for line, t in imports(m, p)[1]]
    assert not hidden, hidden


def test_config_and_metrics_load_without_mxnet():
    code = ("import sys; import siamese.config, siamese.eval.metrics, siamese.eval.thresholds, "
            "siamese.losses.distances, siamese.scoring.scores, siamese.identification.retrieval, "
            "siamese.identification.search, siamese.identification.ranking; "
            "print('mxnet' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("module", sorted(modules()))
def test_modules_and_functions_are_small(module):
    path = modules()[module]
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path}: {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path}:{node.lineno} {node.name}: {length}"


def test_nothing_outside_the_registry_switches_on_an_architecture_name_or_export_kind():
    # architecture names and the export kinds they write (model.json `kind`); the on-disk
    # reader of model.json fills in the layout of exports written before `kind` existed
    names = ("siamese", "pseudo_siamese", "two_channel", "branch", "two_branches", "pair_scorer")
    allowed = {"siamese.models.architectures", "siamese.config.schema", "siamese.config.rules",
               "siamese.formats.bundle"}
    found = []
    for module, path in modules().items():
        if module in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                found += [f"{module}:{node.lineno}" for c in consts if c in names]
    assert not found, found


def module_files(folder: Path) -> list:
    """File names of the modules directly in `folder` (no __init__.py)."""
    return sorted(p.name for p in folder.glob("*.py") if p.name != "__init__.py")


def test_every_module_is_named_in_its_rooms_docstring():
    missing = []
    for folder in sorted({p.parent for p in PACKAGE.rglob("__init__.py")} - {PACKAGE}):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text())) or ""
        lives = doc.split("Lives here:", 1)[-1].split("May import:", 1)[0]
        missing += [f"{folder.name}/{name}" for name in module_files(folder)
                    if f"`{name[:-3]}`" not in lives and f"`{name}`" not in lives]
    assert not missing, missing


def test_readme_names_every_module_in_its_rooms_line():
    """README's "How the code is organised" has a line per room naming each of its files."""
    text = (ROOT / "README.md").read_text().split("## How the code is organised", 1)[1]
    lines = {}
    for item in text.split("\n- `siamese/")[1:]:
        folder, rest = item.split("`", 1)
        lines[folder] = rest.split("\n- ", 1)[0]
    missing = []
    for folder in sorted({p.parent for p in PACKAGE.rglob("*.py")}):
        key = str(folder.relative_to(PACKAGE)) + "/" if folder != PACKAGE else ""
        line = lines.get(key, "")
        missing += [f"siamese/{key}{n}" for n in module_files(folder) + ["__init__.py"] * (
            folder == PACKAGE) if f"`{n}`" not in line]
    assert not missing, missing


def room_edges() -> dict:
    """{(room, room): number of module imports} between different rooms; a room is a
    subpackage, or a module at the package root."""
    edges: dict = {}
    for module, targets in graph().items():
        for t in targets:
            a, b = room(module) or module, room(t) or t
            if a != b:
                edges[(a, b)] = edges.get((a, b), 0) + 1
    return edges


if __name__ == "__main__":
    # python tests/test_structure.py: the rooms and the imports between them
    edges = room_edges()
    rooms = sorted({room(m) or m for m in modules()})
    packages = [r for r in rooms if (PACKAGE / r).is_dir()]
    aliases = [m for m in modules() if aliases_at_root(m)]
    print(f"{len(rooms)} rooms: {len(packages)} subpackages ({', '.join(packages)}) and "
          f"{len(rooms) - len(packages)} modules at the root ({len(aliases)} of them aliases "
          f"of the commands); {len(edges)} room-to-room import edges ({sum(edges.values())} "
          f"module imports), cycles: {find_cycle(graph()) or 'none'}")
    for (a, b), n in sorted(edges.items()):
        print(f"  {a} -> {b}  ({n})")
