"""Read installed Python packages by import name, wherever this interpreter finds them.

A recipe that trains on its own dependencies (the tiny recipe reads jinja2, rich, torch, numpy, ...)
cannot name a directory: `${site_packages}` is one directory (sysconfig's purelib), while a real
install spreads packages over several (a `pip install --user` next to a system Python, a virtual
environment with system site-packages, platlib apart from purelib on some distributions, an
editable install pointing into a checkout). `importlib.util.find_spec` answers where `import NAME`
would load NAME from, without importing it, so this reader reads exactly those files.

Each name is one repository (its documents' `repo`, ids `NAME/path inside the package`), read as
`DirectoryReader` reads a repository: sorted walks, `skip_dirs` pruned at any depth, symlinks,
binary files and bad UTF-8 counted, never followed or fatal. A plain module (`six.py`) is a
repository of one file; a namespace package spread over several directories is each of them in
turn. Names are top-level (`find_spec` of `a.b` would import `a`); one that Python cannot find, or
that has no files (built into the interpreter, frozen), is an error naming it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

from codelm.data.document import DataError, Document
from codelm.data.readers.base import DEFAULT_MAX_BYTES
from codelm.data.readers.tree import SKIP_DIRS, DirectoryReader
from codelm.data.writers import JsonlWriter


def package_paths(name: str) -> list[Path]:
    """Where `import name` loads from: the package's directories, or the module's one file."""
    if not isinstance(name, str) or not name.isidentifier():
        raise DataError(f"packages: {name!r} is not a top-level import name (no dots, no paths)")
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as e:
        raise DataError(f"packages: cannot look up {name!r}: {e}") from None
    if spec is None:
        raise DataError(f"packages: no installed Python package or module named {name!r}")
    if spec.submodule_search_locations:  # a package (a namespace package may have several dirs)
        paths = [Path(p) for p in spec.submodule_search_locations if Path(p).is_dir()]
    elif spec.origin and Path(spec.origin).is_file():
        paths = [Path(spec.origin)]
    else:
        paths = []
    if not paths:
        raise DataError(f"packages: {name!r} has no files to read (origin: {spec.origin})")
    return paths


class PackageReader(DirectoryReader):
    """Yield one `Document` per file of each named installed package (see the module docstring)."""

    def __init__(
        self,
        names: list[str],
        *,
        skip_dirs: frozenset[str] | list[str] = SKIP_DIRS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        shard: tuple[int, int] = (0, 1),
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        if not isinstance(names, (list, tuple)) or not names:
            raise DataError("packages: names must be a non-empty list of import names")
        paths = {n: package_paths(n) for n in sorted(set(names))}
        first = next(iter(paths.values()))[0]
        super().__init__(
            first.parent,  # DirectoryReader's root: unused, repositories() lists the packages
            layout="multi",
            skip_dirs=frozenset(skip_dirs),
            max_bytes=max_bytes,
            shard=shard,
            name=name,
            exclusion_writer=exclusion_writer,
        )
        self.paths = paths
        # plain modules (one file each), found once here rather than by a stat per file read
        self.modules = {path for found in paths.values() for path in found if not path.is_dir()}

    def repositories(self) -> list[tuple[str, Path, bool]]:
        self._skipped_top = []
        return [
            (name, path, path not in self.modules) for name, paths in self.paths.items() for path in paths
        ]

    def _files(self, top: Path, recursive: bool) -> Iterator[Path]:
        if top in self.modules:  # a plain module: its one file
            yield top
            return
        yield from super()._files(top, recursive)

    def _document(self, repo: str, top: Path, file: Path) -> Document:
        return super()._document(repo, top.parent if top in self.modules else top, file)
