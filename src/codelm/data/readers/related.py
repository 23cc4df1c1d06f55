"""Repository context for a commit sample: README, directory structure and BM25-related files.

Seed-Coder's commit samples (report 2.2.2) give the model "the pre-commit code snapshot's README,
directory structure, and top 5 relevant files retrieved via BM25 [Robertson and Zaragoza, 2009]"
besides the message. `RelatedFiles(repo, k)` answers that for a commit: the snapshot is the
parent commit's tree (`git ls-tree`), the candidates are its text files of a known language up to
`max_bytes` that the commit does not change, and the query is the commit's message, paths and
patch (the change names the identifiers it touches; this is training data, so the target may
steer what context is shown). Scoring is BM25 (bm25s, a maintained numpy implementation; Okapi
BM25 with k1 = 1.5, b = 0.75) over identifier and word tokens; files scoring 0 are not returned.

Cost: one `git ls-tree` per commit, and each blob version is read and tokenized once per
repository (a cache keyed by blob id: consecutive snapshots share almost every file).
"""

from __future__ import annotations

import re
import subprocess
from collections import OrderedDict
from pathlib import Path
from typing import Any

from codelm.data.document import DataError
from codelm.data.languages import detect_language
from codelm.data.readers.base import decode_text
from codelm.data.readers.git import BlobReader, git_binary

_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]+")
README = re.compile(r"^readme(\.[a-z]+)?$", re.IGNORECASE)
#: how many lines of the directory listing a sample shows
TREE_LINES = 200


def tokens(text: str) -> list[str]:
    """Words and identifier parts, lower-cased (snake_case splits; camelCase stays one token)."""
    return [t.lower() for t in _TOKEN.findall(text)]


def snapshot(repo: Path, rev: str) -> list[tuple[str, int, str]]:
    """(blob id, size, path) of every file of `rev`'s tree; submodules and symlinks left out."""
    proc = subprocess.run(
        [git_binary(), "-C", str(repo), "ls-tree", "-r", "-z", "-l", "--full-tree", rev],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DataError(f"git ls-tree {rev} in {repo}: {proc.stderr.decode('utf-8', 'replace').strip()}")
    out = []
    for entry in proc.stdout.split(b"\0"):
        if not entry:
            continue
        meta, path = entry.split(b"\t", 1)
        mode, kind, sha, size = meta.split()
        if kind == b"blob" and mode in (b"100644", b"100755"):
            out.append((sha.decode("ascii"), int(size), path.decode("utf-8", "backslashreplace")))
    return out


class RelatedFiles:
    """The context files of a commit in one repository (see the module docstring)."""

    def __init__(self, repo: Path, blobs: BlobReader, k: int = 5, max_bytes: int = 100_000) -> None:
        try:
            import bm25s  # noqa: F401
        except ImportError as e:
            raise DataError("related files need bm25s: pip install 'codelm[data]'") from e
        self.repo, self.blobs, self.k, self.max_bytes = repo, blobs, k, max_bytes
        self._tokens: OrderedDict[str, list[str]] = OrderedDict()  # blob id -> tokens, LRU

    def _text(self, sha: str) -> str | None:
        raw = self.blobs.read(sha)
        decoded = decode_text(raw, self.max_bytes) if raw is not None else ("missing", "")
        return None if isinstance(decoded, tuple) else decoded

    def _tokens_of(self, shas: list[str]) -> list[list[str]]:
        missing = [s for s in dict.fromkeys(shas) if s not in self._tokens]
        for sha, raw in zip(missing, self.blobs.read_many(missing), strict=True):
            decoded = decode_text(raw, self.max_bytes) if raw is not None else ("missing", "")
            self._tokens[sha] = [] if isinstance(decoded, tuple) else tokens(decoded)
        for sha in shas:
            self._tokens.move_to_end(sha)
        while len(self._tokens) > 50_000:
            self._tokens.popitem(last=False)
        return [self._tokens[s] for s in shas]

    def context(self, parent: str, changed: set[str], query: str) -> dict[str, Any]:
        """{"readme": {"path", "content"} or None, "tree": the parent's paths (first TREE_LINES
        lines), "related": [{"path", "content", "score"}] best first} for a commit of `parent`."""
        import bm25s

        files = snapshot(self.repo, parent)
        paths = [p for _, _, p in files]
        tree = "\n".join(paths[:TREE_LINES]) + ("\n..." if len(paths) > TREE_LINES else "") + "\n"
        readmes = sorted((p.count("/"), p, sha) for sha, _, p in files if README.match(p.rsplit("/", 1)[-1]))
        readme = None
        if readmes and readmes[0][0] == 0 and readmes[0][1] not in changed:
            text = self._text(readmes[0][2])
            readme = {"path": readmes[0][1], "content": text} if text else None
        candidates = [
            (sha, p)
            for sha, size, p in files
            if p not in changed
            and size <= self.max_bytes
            and detect_language(p)
            and not README.match(p.rsplit("/", 1)[-1])
        ]
        related: list[dict[str, Any]] = []
        query_tokens = tokens(query)
        corpus = self._tokens_of([sha for sha, _ in candidates])
        vocab = {t for doc in corpus for t in doc}
        query_tokens = [t for t in query_tokens if t in vocab]
        if candidates and query_tokens:
            index = bm25s.BM25()
            index.index(corpus, show_progress=False)
            k = min(self.k, len(candidates))
            ids, scores = index.retrieve([query_tokens], k=k, show_progress=False)
            for i, score in zip(ids[0].tolist(), scores[0].tolist(), strict=True):
                text = self._text(candidates[i][0]) if score > 0 else None
                if text:
                    path = candidates[i][1]
                    related.append({"path": path, "content": text, "score": round(float(score), 4)})
        return {"readme": readme, "tree": tree, "related": related}
