"""Repository packing, CodeGemma style: one document per repository, files in dependency order.

`imports` (what each file imports, per language), `resolve` (imports -> files by longest suffix
match, edge importance), `order` (cycle breaking, shortest paths, topological order, tests beside
their code). The pipeline step is `codelm.data.steps.pack_repos.PackRepos`.
"""

from codelm.data.packing.imports import DEFAULT_TOP_LINES, Import, extract_imports
from codelm.data.packing.order import Ordering, order_files, tested_stem
from codelm.data.packing.resolve import PathIndex, RepoFile, import_edges

__all__ = [
    "DEFAULT_TOP_LINES",
    "Import",
    "Ordering",
    "PathIndex",
    "RepoFile",
    "extract_imports",
    "import_edges",
    "order_files",
    "tested_stem",
]
