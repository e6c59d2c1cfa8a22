"""The shape of the code (docs/architecture.md): thin scripts at the root, one package whose stages import one way, no
module too long to read, argparse only in the command lines."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "segtf"
# Each stage imports only stages of a lower rank: the modules at the package's top ("base") the lowest, cli the highest
RANKS = {"base": 0, "dataset": 1, "modeling": 2, "inference": 3, "evaluation": 4, "training": 5, "export": 5, "cli": 6}
MAX_LINES = 400


def stage(module: str) -> str:
    """The stage of a dotted module name of the package: its subpackage, or base for the modules at its top."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else "base"


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def imported(path: Path) -> set[str]:
    """The modules a file imports, as dotted names; `from package import module` names the module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names if (PACKAGE.parent / node.module.replace(".", "/")
                                                                         / f"{a.name}.py").exists()}  # fmt: skip
    return names


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_root_keeps_only_the_scripts():
    scripts = sorted(p.name for p in REPO.glob("*.py"))
    assert len(scripts) <= 8, scripts
    assert {"train.py", "predict.py", "data_preparation.py", "dataloader.py"} <= set(scripts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_a_module_is_short_and_says_what_it_holds(path: Path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path} has no docstring"


def test_stages_import_one_way_and_never_a_script():
    scripts = {p.stem for p in REPO.glob("*.py")}
    wrong = []
    for path in MODULES:
        source = module_name(path)
        for target in imported(path):
            if target.split(".")[0] in scripts:
                wrong.append(f"{source} imports the script {target}")
            elif target.startswith("segtf.") and RANKS[stage(target)] > RANKS[stage(source)]:
                wrong.append(f"{source} ({stage(source)}) imports {target} ({stage(target)})")
            elif target == "argparse" and stage(source) != "cli":
                wrong.append(f"{source} imports argparse outside cli/")
    assert not wrong, "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle of the import graph as the modules along it, or [] when there is none (depth-first search)."""
    done, trail = set(), []

    def visit(module: str) -> list[str]:
        if module in trail:
            return trail[trail.index(module) :] + [module]
        if module in done:
            return []
        trail.append(module)
        for target in sorted(graph.get(module, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        done.add(trail.pop())
        return []

    return next((cycle for cycle in map(visit, sorted(graph)) if cycle), [])


def test_no_module_imports_itself_through_others():
    graph = {module_name(p): {t for t in imported(p) if t.startswith("segtf.")} for p in MODULES}
    assert find_cycle(graph) == []


def test_the_checks_find_what_they_look_for(tmp_path: Path):
    """The rules above read real imports: a cycle, an upward import and argparse are seen where they are."""
    (tmp_path / "a.py").write_text("import argparse\nfrom segtf.cli import flags\nfrom segtf.dataset.images import x\n")
    found = imported(tmp_path / "a.py")
    assert {"argparse", "segtf.cli.flags", "segtf.dataset.images"} <= found
    assert stage("segtf.cli.flags") == "cli" and stage("segtf.config") == "base" and stage("segtf.dataset") == "dataset"
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
