"""Check the import rules of docs/DESIGN: no cycles (function-level imports included) and imports only downhill."""

from __future__ import annotations

import ast
import statistics
import sys
from pathlib import Path

ROOTS = ("agents", "retrieval", "kb", "prompts", "evals", "server")
# (importer prefix, imported prefix, why not): checked on every import, at module level or inside a function
FORBIDDEN = [
    ("retrieval", "agents", "retrieval/ is a library of its own"),
    ("kb", "agents", "kb/ only loads the knowledge base"),
    ("prompts", "agents", "prompts/ only loads prompt files"),
    ("retrieval", "evals", "retrieval/ is a library of its own"),
    ("agents", "evals", "only the CLI (agents/cli/) may import evals/"),
    ("agents", "server", "nothing imports server.py"),
    ("evals", "server", "nothing imports server.py"),
]
ALLOWED = [("agents.cli", "evals")]
MAX_LINES, MEDIAN_LINES = 500, 200


def modules(root: Path) -> dict[str, Path]:
    found = {"server": root / "server.py"}
    for top in ROOTS[:-1]:
        for path in (root / top).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every project module this file imports, wherever the import statement stands."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def tangles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or round a loop (Tarjan's strongly connected parts)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def is_under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    mods = modules(root)
    # a package's __init__ is not an edge: importing agents.llm.chat runs agents/__init__ and agents/llm/__init__,
    # which hold only docstrings here (checked below)
    graph = {m: {i for i in imports_of(p, set(mods)) if i != m} for m, p in mods.items()}
    problems = []
    for m, p in mods.items():
        if p.name == "__init__.py" and graph[m]:
            problems.append(f"{p.relative_to(root)} imports {sorted(graph[m])}: keep package __init__ files empty")
        for i in graph[m]:
            for src, dst, why in FORBIDDEN:
                if (
                    is_under(m, src)
                    and is_under(i, dst)
                    and not any(is_under(m, a) and is_under(i, b) for a, b in ALLOWED)
                ):
                    problems.append(f"{m} imports {i}: {why}")
    for group in tangles(graph):
        problems.append("import cycle among " + ", ".join(group))
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in mods.items() if p.name != "__init__.py"}
    for m, n in sizes.items():
        if n > MAX_LINES:
            problems.append(f"{m} has {n} lines (at most {MAX_LINES})")
    median = statistics.median(sizes.values())
    if median > MEDIAN_LINES:
        problems.append(f"median module has {median} lines (at most {MEDIAN_LINES})")
    for line in problems:
        print(f"check_imports: {line}")
    print(
        f"check_imports: {len(mods)} modules, median {median:.0f} lines, largest {max(sizes.values())}; "
        f"{len(problems)} problem(s)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
