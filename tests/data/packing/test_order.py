"""CodeGemma ordering: weakest edges cut cycles, nearest-first topological order, tests beside code."""

import numpy as np

from codelm.data.packing import RepoFile, import_edges, order_files
from codelm.data.packing import tested_stem as stem_of
from codelm.data.packing.order import break_cycles, shortest_paths, topological_order

# A package whose core and models import each other (the cycle), with tests inside and outside the graph.
REPO = {
    "pkg/__init__.py": "from pkg.core import Engine\nfrom pkg.util import helper\n",
    "pkg/core.py": "from pkg.util import helper, fmt\nfrom pkg import models\n\nclass Engine:\n"
    "    def run(self):\n        return helper(fmt(helper(1)), helper(2))\n\n"
    "    def model(self):\n        return models.Model()\n",
    "pkg/models.py": "from pkg.core import Engine\n\nclass Model:\n    pass\n",
    "pkg/util.py": "import os\n\ndef helper(x):\n    return x\n\ndef fmt(x):\n    return str(x)\n",
    "tests/test_core.py": "from pkg.core import Engine\n\ndef test_run():\n    assert Engine().run()\n",
    "tests/test_util.py": "def test_nothing():\n    assert True\n",
    "README.md": "# pkg\n",
    "setup.py": "from setuptools import setup\nsetup()\n",
}


def repo_files():
    return [RepoFile(p, t, "python" if p.endswith(".py") else "markdown") for p, t in REPO.items()]


def test_exact_order_of_a_repo_with_a_cycle_and_tests():
    edges = import_edges(repo_files())
    # core -> models is used twice (import + one call), models -> core never beyond its import: weakest
    assert edges[("pkg/models.py", "pkg/core.py")] < edges[("pkg/core.py", "pkg/models.py")]
    ordering = order_files(list(REPO), edges)
    assert ordering.dropped_edges == [("pkg/models.py", "pkg/core.py")]
    assert ordering.order == [
        "pkg/models.py",  # ready after the cycle is cut, and first by name among ready files
        "pkg/util.py",
        "tests/test_util.py",  # outside the graph: packed beside the file it tests
        "pkg/core.py",  # both its dependencies are placed
        "tests/test_core.py",  # nearer to core (strong edge) than pkg/__init__.py is
        "pkg/__init__.py",
        "README.md",  # outside the graph, alphabetical
        "setup.py",
    ]
    assert ordering.graph_files == 5 and ordering.tests_moved == 1


def test_every_dependency_comes_first():
    edges = import_edges(repo_files())
    acyclic, _ = break_cycles(edges)
    order = order_files(list(REPO), edges).order
    for importer, imported in acyclic:
        assert order.index(imported) < order.index(importer)


def test_break_cycles_drops_the_weakest_edge_of_each_cycle():
    edges = {("a", "b"): 3.0, ("b", "c"): 1.0, ("c", "a"): 2.0, ("x", "y"): 1.0, ("y", "x"): 1.0}
    kept, dropped = break_cycles(edges)
    assert dropped == [("b", "c"), ("x", "y")]  # tie between x<->y: the smaller pair goes
    assert set(kept) == {("a", "b"), ("c", "a"), ("y", "x")}


def test_shortest_paths_are_undirected_and_weighted():
    nodes = ["a", "b", "c", "d"]
    dist = shortest_paths(nodes, {("a", "b"): 2.0, ("b", "c"): 4.0})
    assert dist[0, 2] == dist[2, 0] == 0.5 + 0.25
    assert np.isinf(dist[0, 3])


def test_nearest_ready_file_wins_over_alphabetical():
    # z depends on nothing but is strongly tied to a; b is unrelated: after a, z (near) beats b
    edges = {("z", "a"): 5.0, ("c", "b"): 1.0}
    assert topological_order(["a", "b", "c", "z"], edges) == ["a", "z", "b", "c"]


def test_tested_stem_conventions():
    cases = {
        "tests/test_foo.py": "foo",
        "foo_test.go": "foo",
        "FooTest.java": "Foo",
        "TestFoo.java": "Foo",
        "src/foo.test.ts": "foo",
        "foo.spec.js": "foo",
        "foo_unittest.cc": "foo",
        "FooTests.cs": "Foo",
        "foo.py": None,
        "Testing.java": None,
        "contest.py": None,
    }
    assert {p: stem_of(p) for p in cases} == cases


def test_java_tests_move_beside_their_class():
    paths = [
        "src/main/java/a/Foo.java",
        "src/main/java/a/Bar.java",
        "src/test/java/a/FooTest.java",
        "src/test/java/a/BarTest.java",
        "src/test/java/a/Orphan Test.java",
    ]
    order = order_files(paths, {}).order
    assert order == [
        "src/main/java/a/Bar.java",
        "src/test/java/a/BarTest.java",
        "src/main/java/a/Foo.java",
        "src/test/java/a/FooTest.java",
        "src/test/java/a/Orphan Test.java",
    ]
