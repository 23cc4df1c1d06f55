"""Pack each repository's files into one document, in dependency order (CodeGemma §2).

`PackRepos(family=...)` groups the documents by `repo`, orders each repository's files with
`codelm.data.packing.order_files` (imports of the top `top_lines` lines, longest-suffix
resolution, weak edges dropped to break cycles, shortest paths, nearest-first topological order,
then the remaining files alphabetically with tests beside their code), and joins them with the
family's file separator via `codelm.models.formats.render_repo_context` (families without one,
codegen1 and seedcoder, get `# path` comment headers). `max_chars` splits a very large
repository into several documents at file boundaries (Seed-Coder splits large repositories too).

Counting: every file is a document in; each packed document out is `kept`; the other files of a
repository are dropped as `merged_into_repo`, so in = kept + dropped still holds. Metadata of a
packed document: `special_spans` (where the separators are, for `codelm data pack`:
`codelm.data.specials`), `files` (the order), `languages`, `packing` (graph size, edges, edges dropped to
break cycles, tests moved) and `quality` (the mean of its files' scores, when they have one).

The step is global: a repository must not be split across shards. DirectoryReader shards by
repository, so that holds; with record readers (JSONL, Parquet; sharded by file) it holds only
when each repository's records sit in one file, and the executor checks it (`decide` refuses a
repository seen in two shards) instead of silently packing halves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from codelm.data.document import DataError, Document
from codelm.data.global_step import Arrays, GlobalStep, ShardDocs, check_position, ids_array
from codelm.data.packing import DEFAULT_TOP_LINES, RepoFile, import_edges, order_files
from codelm.data.specials import SPANS_KEY, render_repo
from codelm.data.writers import JsonlWriter


def _repo_of(doc: Document) -> str:
    return doc.repo if doc.repo is not None else doc.id


class PackRepos(GlobalStep):
    """One document per repository (or per `max_chars` slice of one), files in dependency order."""

    def __init__(
        self,
        family: str = "llama",
        *,
        top_lines: int = DEFAULT_TOP_LINES,
        max_chars: int | None = None,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        from codelm.models import get_family

        self.family = get_family(family)  # raises with "did you mean" on a typo
        if top_lines < 1 or (max_chars is not None and max_chars < 1):
            raise DataError(
                f"pack_repos needs top_lines >= 1 and max_chars >= 1, got {top_lines}, {max_chars}"
            )
        self.top_lines, self.max_chars = top_lines, max_chars

    def pack(self, repo: str, docs: Sequence[Document]) -> list[Document]:
        """The packed document(s) of one repository's files."""
        by_path: dict[str, Document] = {}
        for d in docs:
            path = d.path or d.id
            if path in by_path:
                raise DataError(f"{self.name}: repository {repo!r} has two documents with path {path!r}")
            by_path[path] = d
        files = [RepoFile(p, d.text, d.language) for p, d in by_path.items()]
        ordering = order_files(list(by_path), import_edges(files, self.top_lines))
        self.stats.counters["edges"] += ordering.edges
        self.stats.counters["edges_dropped_for_cycles"] += len(ordering.dropped_edges)
        self.stats.counters["tests_moved"] += ordering.tests_moved
        chunks: list[list[str]] = [[]]
        size = 0
        for path in ordering.order:
            n = len(by_path[path].text)
            if self.max_chars is not None and chunks[-1] and size + n > self.max_chars:
                chunks.append([])
                size = 0
            chunks[-1].append(path)
            size += n
        out = []
        for k, paths in enumerate(chunks):
            members = [by_path[p] for p in paths]
            langs = Counter(d.language or "unknown" for d in members)
            scores = [
                d.metadata["quality"] for d in members if isinstance(d.metadata.get("quality"), (int, float))
            ]
            meta: dict[str, Any] = {
                "files": paths,
                "languages": dict(langs.most_common()),
                "packing": {
                    "graph_files": ordering.graph_files,
                    "edges": ordering.edges,
                    "dropped_edges": [list(e) for e in ordering.dropped_edges],
                    "tests_moved": ordering.tests_moved,
                    "family": self.family.name,
                },
            }
            if scores:
                meta["quality"] = float(np.mean(scores))
            text, meta[SPANS_KEY] = render_repo(self.family, [(p, by_path[p].text) for p in paths])
            doc_id = repo if len(chunks) == 1 else f"{repo}#{k + 1}"
            by_bytes = Counter({lang: 0 for lang in langs})
            for d in members:
                by_bytes[d.language or "unknown"] += len(d.text)
            out.append(
                Document(text, doc_id, repo=repo, language=by_bytes.most_common(1)[0][0], metadata=meta)
            )
        return out

    # -- the three phases -----------------------------------------------------------------------
    def summarize(self, docs: Iterable[Document]) -> Arrays:
        docs = list(docs)
        repos = sorted({_repo_of(d) for d in docs})
        return {"ids": ids_array(docs), "repos": np.array(repos) if repos else np.empty(0, "<U1")}

    def decide(self, summaries: Sequence[Arrays], shard_docs: ShardDocs) -> list[Arrays]:
        seen: dict[str, int] = {}
        for shard, s in enumerate(summaries):
            for repo in s["repos"].tolist():
                if repo in seen:
                    raise DataError(
                        f"{self.name}: repository {repo!r} is in shards {seen[repo]} and {shard}; packing "
                        "needs each repository in one shard (read it with DirectoryReader, which shards "
                        "by repository, or keep each repository's records in one input file)"
                    )
                seen[repo] = shard
        self.decide_counters = {"repositories": len(seen)}
        return [{"shard": np.array([i])} for i in range(len(summaries))]

    def apply(self, docs: Iterator[Document], decision: Arrays, summary: Arrays) -> Iterator[Document]:
        groups: dict[str, list[Document]] = {}
        for i, doc in enumerate(docs):
            check_position(self.name, summary, i, doc)
            groups.setdefault(_repo_of(doc), []).append(doc)
        for repo, members in groups.items():
            packed = self.pack(repo, members)
            self.stats.dropped["merged_into_repo"] += len(members) - len(packed)
            for doc in packed:
                yield self.keep(doc)
