"""Order the files of a repository so that each comes after what it depends on (CodeGemma §2).

Given weighted import edges (`resolve.import_edges`; "A imports B" means B should come first):

1. **break cycles**: while a strongly connected component has more than one file, drop its
   weakest edge (ties: the smaller (importer, imported) pair), as CodeGemma drops unimportant
   edges; Python packages that import each other are the common case;
2. **all-pairs shortest paths** on the remaining edges taken as undirected, length 1/importance
   (a strong link is a short one), Floyd-Warshall per connected component in numpy;
3. **topological order**: repeatedly place the file with no unplaced dependency that is nearest
   to the files already placed (minimum distance to any of them), ties broken by path: a file
   unrelated to everything placed so far has infinite distance, so a new component starts at its
   alphabetically first file;
4. files **outside the graph** (no edge at all) follow, alphabetically; then every test file not
   in the graph moves right after the file it tests (`test_foo.py` beside `foo.py`, `FooTest.java`
   beside `Foo.java`, `foo.test.ts`, `foo_test.go`, `foo_unittest.cc`), several tests in path order.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

_TEST_PATTERNS = [
    re.compile(r"^test_(?P<s>.+)$"),
    re.compile(r"^(?P<s>.+?)_(?:unit)?tests?$"),
    re.compile(r"^(?P<s>.+?)\.(?:test|spec)$"),
    re.compile(r"^(?P<s>[A-Z]\w*?)(?:Tests?|IT)$"),
    re.compile(r"^Test(?P<s>[A-Z]\w*)$"),
]


@dataclass
class Ordering:
    """The packed order and what it took to get it."""

    order: list[str]
    graph_files: int = 0
    edges: int = 0
    dropped_edges: list[tuple[str, str]] = field(default_factory=list)
    tests_moved: int = 0


def strongly_connected(nodes: Sequence[str], succ: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a deep import chain must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(succ.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(succ.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


def break_cycles(
    edges: dict[tuple[str, str], float],
) -> tuple[dict[tuple[str, str], float], list[tuple[str, str]]]:
    """Drop the weakest edge of every cyclic component until none is left; returns (kept, dropped)."""
    kept = dict(edges)
    dropped: list[tuple[str, str]] = []
    while True:
        succ: dict[str, set[str]] = defaultdict(set)
        for a, b in kept:
            succ[a].add(b)
        nodes = sorted({n for e in kept for n in e})
        cyclic = [set(c) for c in strongly_connected(nodes, succ) if len(c) > 1]
        if not cyclic:
            return kept, dropped
        for comp in cyclic:
            inside = [e for e in kept if e[0] in comp and e[1] in comp]
            weakest = min(inside, key=lambda e: (kept[e], e))
            del kept[weakest]
            dropped.append(weakest)


def shortest_paths(nodes: Sequence[str], edges: dict[tuple[str, str], float]) -> np.ndarray:
    """(n, n) undirected shortest distances with edge length 1/importance; inf between components."""
    n = len(nodes)
    pos = {v: i for i, v in enumerate(nodes)}
    dist = np.full((n, n), np.inf)
    np.fill_diagonal(dist, 0.0)
    for (a, b), w in edges.items():
        i, j = pos[a], pos[b]
        length = 1.0 / max(w, 1e-9)
        dist[i, j] = dist[j, i] = min(dist[i, j], length)
    # Floyd-Warshall per connected component: O(k^3) for a component of k files
    seen = np.zeros(n, dtype=bool)
    for start in range(n):
        if seen[start]:
            continue
        comp = np.flatnonzero(np.isfinite(dist[start]))
        frontier = comp
        while True:  # grow to the full component (direct edges only reach neighbours)
            grown = np.flatnonzero(np.isfinite(dist[frontier]).any(axis=0))
            if len(grown) == len(frontier):
                break
            frontier = grown
        comp = frontier
        seen[comp] = True
        sub = dist[np.ix_(comp, comp)]
        for k in range(len(comp)):
            np.minimum(sub, sub[:, k : k + 1] + sub[k : k + 1, :], out=sub)
        dist[np.ix_(comp, comp)] = sub
    return dist


def topological_order(nodes: Sequence[str], edges: dict[tuple[str, str], float]) -> list[str]:
    """Dependencies first; among ready files the nearest to the placed ones, then by path."""
    nodes = sorted(nodes)
    pos = {v: i for i, v in enumerate(nodes)}
    dist = shortest_paths(nodes, edges)
    waiting = np.zeros(len(nodes), dtype=np.int64)  # unplaced dependencies per file
    dependents: dict[int, list[int]] = defaultdict(list)
    for importer, imported in edges:
        waiting[pos[importer]] += 1
        dependents[pos[imported]].append(pos[importer])
    ready = {i for i in range(len(nodes)) if waiting[i] == 0}
    near = np.full(len(nodes), np.inf)  # distance of each file to the nearest placed file
    order: list[str] = []
    while ready:
        best = min(ready, key=lambda i: (near[i], nodes[i]))
        ready.remove(best)
        order.append(nodes[best])
        np.minimum(near, dist[best], out=near)
        for d in dependents[best]:
            waiting[d] -= 1
            if waiting[d] == 0:
                ready.add(d)
    if len(order) != len(nodes):
        raise ValueError("topological_order needs an acyclic graph (call break_cycles first)")
    return order


def tested_stem(path: str) -> str | None:
    """The file stem a test file tests (`tests/test_foo.py` -> `foo`), None if not a test file."""
    name = posixpath.basename(path)
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    for pattern in _TEST_PATTERNS:
        m = pattern.match(stem)
        if m and m.group("s"):
            return m.group("s")
    return None


def _ext(path: str) -> str:
    return path.rsplit(".", 1)[-1].lower() if "." in posixpath.basename(path) else ""


def place_tests(order: list[str], movable: set[str]) -> tuple[list[str], int]:
    """Move each test file in `movable` right after the file it tests, when that file exists."""
    stems: dict[str, list[str]] = defaultdict(list)
    for p in order:
        name = posixpath.basename(p)
        stems[name.rsplit(".", 1)[0] if "." in name[1:] else name].append(p)
    home: dict[str, list[str]] = defaultdict(list)
    for p in sorted(movable):
        stem = tested_stem(p)
        cands = [c for c in stems.get(stem or "", []) if c != p and tested_stem(c) is None]
        same = [c for c in cands if _ext(c) == _ext(p) or {_ext(c), _ext(p)} <= {"js", "jsx", "ts", "tsx"}]
        if same:
            target = min(same, key=lambda c: (-_shared_dirs(c, p), c))
            home[target].append(p)
    moved = {t for ts in home.values() for t in ts}
    out: list[str] = []
    for p in order:
        if p in moved:
            continue
        out.append(p)
        out.extend(sorted(home.get(p, [])))
    return out, len(moved)


def _shared_dirs(a: str, b: str) -> int:
    """Directory components two paths share, ignoring test directories (src/x/foo vs tests/x/test_foo)."""
    strip = {"test", "tests", "__tests__", "spec", "src", "main", "lib"}
    da = [p for p in posixpath.dirname(a).split("/") if p and p not in strip]
    db = [p for p in posixpath.dirname(b).split("/") if p and p not in strip]
    return sum(1 for x, y in zip(reversed(da), reversed(db), strict=False) if x == y)


def order_files(paths: Sequence[str], edges: dict[tuple[str, str], float]) -> Ordering:
    """The full CodeGemma order of `paths` given import edges (see the module docstring)."""
    in_graph = sorted({n for e in edges for n in e})
    acyclic, dropped = break_cycles(edges)
    order = topological_order(in_graph, acyclic)
    outside = sorted(set(paths) - set(in_graph))
    final, moved = place_tests(order + outside, set(outside))
    return Ordering(final, len(in_graph), len(edges), dropped, moved)
