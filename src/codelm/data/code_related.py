"""Is a page code-related? Seed labels, a fast linear classifier on hashed n-grams, a threshold.

Seed-Coder (report §2.2, code-related web data) has an LLM label a seed sample of Common Crawl
pages, trains a fastText classifier on those labels, and recalls code-related pages from the
whole crawl with it. codelm does the same with parts that run offline:

1. **seed labels** (`seed_label`): rules over the extracted text (the share of it in code
   blocks, code-like punctuation and identifiers, programming vocabulary) label the clear cases
   1 or 0 and leave the unclear ones out (None), as a seed set should; `oracle_label` asks any
   `ChatModel` of the quality oracle (`codelm.data.quality.oracle`) instead, and an answer that
   does not parse is counted, never guessed;
2. **the classifier** (`CodeRelatedModel`): logistic regression on L2-normalised counts of word
   unigrams and bigrams plus punctuation runs (`(`, `);`, `=>`, `::`), hashed into 2^18
   buckets with CRC-32. Why this: it is the model family of fastText's supervised mode (a linear
   model over hashed word n-grams) without its low-rank embedding, in numpy, scoring a page with
   one sparse dot product; the `fasttext` package is archived (2024) and needs a C++ build;
3. **the threshold**: the score that maximises F1 on a validation split; precision and recall
   are then reported on a held-out test split the model and threshold never saw (`train`).

Model files are `.npz` (weights, bias, threshold, metrics as JSON), loaded without pickle.

    python -m codelm.data.code_related --html /usr/share/doc/python3.11/html \\
        --text /usr/share/common-licenses --out runs/code-related.npz
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codelm.data.document import DataError, Document

N_FEATURES = 1 << 18
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[(){}\[\];:=<>!&|+\-*/%^~.,@#$\\]+")
_WORD = re.compile(r"[A-Za-z]+")
_FENCED = re.compile(r"^(`{3,}).*?^\1$", re.MULTILINE | re.DOTALL)
_CODE_PUNCT = re.compile(r"[(){}\[\];=<>]|->|=>|::|\+\+|!=|==")
_IDENT = re.compile(r"\b[a-z]+_[a-z_0-9]+\b|\b[a-z]+[A-Z][A-Za-z0-9]+\b|\b\w+\(\)")
#: programming vocabulary: words that are rare outside pages about software
TECH_WORDS = frozenset(
    """api argument arguments array attribute boolean bug buffer byte bytes class classes command compile
    compiler config constructor debug default deprecated dict directory exception expression file
    function functions git github http import install instance integer interface iterator json kernel
    keyword library linux method methods module modules null object parameter parameters parse parser
    pip python return returns runtime script server socket string syntax thread tuple type unicode
    variable version""".split()
)


def features(text: str, n_features: int = N_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices, L2-normalised log counts) of the text's hashed unigrams and bigrams."""
    tokens = [t.lower() for t in _TOKEN.findall(text[:200_000])]
    grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]
    counts = Counter(zlib.crc32(g.encode("utf-8", "surrogatepass")) % n_features for g in grams)
    if not counts:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    idx = np.fromiter(counts.keys(), np.int64, len(counts))
    val = np.log1p(np.fromiter(counts.values(), np.float32, len(counts)))
    return idx, val / np.linalg.norm(val)


def heuristic_score(text: str) -> float:
    """0-1: how code-related the text looks (code blocks, code punctuation, identifiers, vocabulary)."""
    if not text.strip():
        return 0.0
    code_share = sum(len(m.group(0)) for m in _FENCED.finditer(text)) / len(text)
    words = _WORD.findall(text.lower())
    tech = sum(w in TECH_WORDS for w in words) / max(len(words), 1)
    punct = len(_CODE_PUNCT.findall(text)) / max(len(words), 1)
    ident = len(_IDENT.findall(text)) / max(len(words), 1)
    return float(min(1.0, 2.0 * code_share + 4.0 * tech + 1.5 * punct + 3.0 * ident))


def seed_label(text: str, low: float = 0.15, high: float = 0.5) -> int | None:
    """1 (code-related), 0 (not), or None (unclear: left out of the seed set)."""
    score = heuristic_score(text)
    return 1 if score >= high else 0 if score <= low else None


ORACLE_PROMPT = """Is the following web page code-related, that is about programming, software, \
computing systems or technical documentation of them? Answer with one word in double brackets: \
[[yes]] or [[no]].

Page:
{text}"""
_YES_NO = re.compile(r"\[\[\s*(yes|no)\s*\]\]", re.IGNORECASE)


def parse_yes_no(answer: str) -> int | None:
    """1 / 0 from the last `[[yes]]` / `[[no]]` of an answer; None when there is none."""
    found = _YES_NO.findall(answer)
    return None if not found else int(found[-1].lower() == "yes")


def oracle_label(docs: Sequence[Document], chat: Any, max_chars: int = 4000) -> tuple[list[int | None], int]:
    """Labels from a `ChatModel` (`chat(messages) -> str`), and how many answers did not parse."""
    labels, unparseable = [], 0
    for doc in docs:
        answer = chat.chat([{"role": "user", "content": ORACLE_PROMPT.format(text=doc.text[:max_chars])}])
        label = parse_yes_no(answer)
        unparseable += label is None
        labels.append(label)
    return labels, unparseable


@dataclass
class CodeRelatedModel:
    """Logistic regression over hashed n-gram features; `score` is P(code-related)."""

    weights: np.ndarray
    bias: float = 0.0
    threshold: float = 0.5
    metrics: dict[str, Any] | None = None

    def score(self, text: str) -> float:
        idx, val = features(text, len(self.weights))
        return float(1.0 / (1.0 + np.exp(-(float(self.weights[idx] @ val) + self.bias))))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez_compressed(
                f,
                weights=self.weights.astype(np.float32),
                bias=np.float64(self.bias),
                threshold=np.float64(self.threshold),
                metrics=np.array(json.dumps(self.metrics or {})),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> CodeRelatedModel:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    z["weights"], float(z["bias"]), float(z["threshold"]), json.loads(str(z["metrics"]))
                )
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"cannot load a code-related classifier from {path}: {e}") from e


def fit(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    epochs: int = 8,
    lr: float = 0.5,
    l2: float = 1e-6,
    seed: int = 0,
) -> CodeRelatedModel:
    """Logistic regression by SGD over shuffled examples (classes weighted to balance)."""
    feats = [features(t) for t in texts]
    y = np.asarray(labels, dtype=np.float64)
    pos = max(float(y.sum()), 1.0)
    neg = max(float(len(y) - y.sum()), 1.0)
    weight = np.where(y == 1, len(y) / (2 * pos), len(y) / (2 * neg))
    w, b = np.zeros(N_FEATURES, np.float64), 0.0
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        step = lr / (1 + epoch)
        for i in rng.permutation(len(feats)):
            idx, val = feats[i]
            p = 1.0 / (1.0 + np.exp(-(w[idx] @ val + b)))
            g = (p - y[i]) * weight[i]
            w[idx] -= step * (g * val + l2 * w[idx])
            b -= step * g
    return CodeRelatedModel(w.astype(np.float32), b)


def precision_recall(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    pred = scores >= threshold
    tp = int(np.sum(pred & (labels == 1)))
    precision = tp / max(int(pred.sum()), 1)
    recall = tp / max(int((labels == 1).sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "n": len(labels),
    }


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The candidate score that maximises F1 (ties: the higher threshold, for precision)."""
    candidates = sorted(set(np.round(scores, 4).tolist()) | {0.5})
    return max(candidates, key=lambda t: (precision_recall(scores, labels, t)["f1"], t))


def split_of(doc_id: str) -> str:
    """train (80%), val (10%) or test (10%), fixed by the document id."""
    bucket = zlib.crc32(doc_id.encode("utf-8", "surrogatepass")) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def train(
    docs: Sequence[Document], labeler: Callable[[str], int | None] = seed_label, **fit_args: Any
) -> CodeRelatedModel:
    """Seed-label `docs`, fit on the train split, pick the threshold on val, report on test."""
    labelled = [(d, labeler(d.text)) for d in docs]
    seeds = [(d, y) for d, y in labelled if y is not None]
    parts: dict[str, list[tuple[Document, int]]] = {"train": [], "val": [], "test": []}
    for d, y in seeds:
        parts[split_of(d.id)].append((d, y))
    if len({y for _, y in parts["train"]}) < 2:
        raise DataError(
            f"the seed labels of the train split need both classes; got {Counter(y for _, y in seeds)}"
        )
    model = fit([d.text for d, _ in parts["train"]], [y for _, y in parts["train"]], **fit_args)

    def scored(name: str) -> tuple[np.ndarray, np.ndarray]:
        return np.array([model.score(d.text) for d, _ in parts[name]]), np.array([y for _, y in parts[name]])

    val_scores, val_labels = scored("val")
    model.threshold = best_threshold(val_scores, val_labels) if len(val_labels) else 0.5
    test_scores, test_labels = scored("test")
    model.metrics = {
        "seed_labels": {"positive": sum(y for _, y in seeds), "negative": sum(1 - y for _, y in seeds)},
        "unclear": len(labelled) - len(seeds),
        "split": {k: len(v) for k, v in parts.items()},
        "threshold": model.threshold,
        "test": precision_recall(test_scores, test_labels, model.threshold),
    }
    return model


def _plain_texts(paths: Sequence[str]) -> list[Document]:
    docs = []
    for top in map(Path, paths):
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for f in files:
            raw = f.read_bytes()
            if b"\x00" not in raw[:8000]:
                docs.append(Document(raw.decode("utf-8", "replace"), f"text:{f}"))
    return docs


def main(argv: Sequence[str] | None = None) -> int:
    """Train a classifier from HTML pages, reST/Markdown sources and plain text files."""
    import argparse

    from codelm.data.pipeline import run_pipeline
    from codelm.data.readers.docs import HtmlReader, MarkupReader

    p = argparse.ArgumentParser(prog="python -m codelm.data.code_related", description=main.__doc__)
    p.add_argument("--html", action="append", default=[], help="HTML files, directories or WARC files")
    p.add_argument("--markup", action="append", default=[], help="reST / Markdown files or directories")
    p.add_argument("--text", action="append", default=[], help="plain text files or directories")
    p.add_argument("--out", required=True, help="model file to write (.npz)")
    args = p.parse_args(argv)
    readers = [HtmlReader(args.html)] if args.html else []
    readers += [MarkupReader(args.markup)] if args.markup else []
    docs = list(run_pipeline(readers)[0]) if readers else []
    model = train(docs + _plain_texts(args.text))
    model.save(args.out)
    print(json.dumps(model.metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
