"""Label a sample of files with the oracle and train the regression scorer on the labels.

    codelm data quality-train configs/data/quality-scorer.yaml [--set sample=500]

The YAML names readers and optional steps (the same entries as a curation config; run in this
process), how many files to sample (reservoir sampling, seeded, so reruns label the same files),
the oracle (`engine: {model: DIR}` in-process, or `openai: {base_url, model}`), the feature sets
and ridge `alpha`. It writes under `output`: labels.jsonl (every answer with its parsed score or
null), model.json (load it with `scorer: OUT/model.json` in a quality step) and metrics.json
(parsed / unparseable counts, cross-validated MAE). `labels: FILE` reuses earlier labels instead
of asking the oracle again. Files without a parsed score are left out of training.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codelm.config import load as load_config_file
from codelm.data.config import StageConfig
from codelm.data.curate_config import parse_entry
from codelm.data.document import DataError, Document
from codelm.data.pipeline import run_pipeline
from codelm.data.quality.oracle import EngineChat, Label, OpenAIChat, OracleStats, label_documents
from codelm.data.quality.regression import Featurizer, RegressionScorer, RidgeModel, cross_validate
from codelm.data.registry import build_reader, build_step
from codelm.jsonl import iter_records


@dataclass(frozen=True)
class QualityTrainConfig(StageConfig):
    """Settings of one labelling + training run (see the module docstring)."""

    output: str
    readers: list[Any] = field(default_factory=list)
    steps: list[Any] = field(default_factory=list)
    sample: int = 1000  #: files to label
    seed: int = 0
    oracle: dict[str, Any] = field(default_factory=dict)  #: {engine: {...}} or {openai: {...}}
    max_file_chars: int = 6000  #: file text shown to the oracle
    labels: str | None = None  #: reuse a labels.jsonl instead of asking the oracle
    features: list[str] = field(default_factory=lambda: ["code"])  #: code and/or lm
    lm_model: str | None = None  #: checkpoint for the lm features
    lm_max_tokens: int = 512
    alpha: float = 1.0  #: ridge penalty

    def __post_init__(self) -> None:
        if self.sample < 2 or self.alpha < 0:
            raise DataError(f"quality training needs sample >= 2 and alpha >= 0: {self}")
        if self.labels is None and len(self.oracle) != 1:
            raise DataError(
                "quality training needs `oracle: {engine: {model: DIR}}` or "
                "`oracle: {openai: {base_url: URL, model: NAME}}` (or `labels: FILE`)"
            )
        if self.labels is None and not self.readers:
            raise DataError("quality training needs `readers:` to sample files from")


def sample_documents(docs: Iterable[Document], k: int, seed: int) -> list[Document]:
    """Reservoir sample of `k` documents (algorithm R), in stream order."""
    rng = random.Random(seed)
    reservoir: list[tuple[int, Document]] = []
    for i, doc in enumerate(docs):
        if len(reservoir) < k:
            reservoir.append((i, doc))
        else:
            j = rng.randint(0, i)
            if j < k:
                reservoir[j] = (i, doc)
    return [d for _, d in sorted(reservoir, key=lambda x: x[0])]


def make_oracle(spec: dict[str, Any]) -> Any:
    [(kind, settings)] = spec.items()
    settings = dict(settings or {})
    if kind == "engine":
        if "model" not in settings:
            raise DataError("oracle.engine needs model: a checkpoint directory or hub id")
        return EngineChat.from_pretrained(settings.pop("model"), **settings)
    if kind == "openai":
        try:
            return OpenAIChat(**settings)
        except TypeError as e:
            raise DataError(f"oracle.openai: {e} (settings: base_url, model, api_key_env, max_tokens)") from e
    raise DataError(f"oracle must be `engine` or `openai`, got {kind!r}")


def _read_labels(path: str) -> tuple[list[Label], list[Document]]:
    labels, docs = [], []
    for r in iter_records(path):
        labels.append(Label(r["id"], r.get("path"), r.get("language"), r.get("score"), r.get("answer", "")))
        docs.append(Document(r["text"], r["id"], path=r.get("path"), language=r.get("language")))
    return labels, docs


def train_quality_scorer(cfg: QualityTrainConfig) -> tuple[RegressionScorer, dict[str, Any]]:
    """Label (or reuse labels), fit, cross-validate, save; returns the scorer and its metrics."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    stats = OracleStats()
    if cfg.labels:
        labels, docs = _read_labels(cfg.labels)
        stats.requested = len(labels)
        stats.parsed = sum(lb.score is not None for lb in labels)
        stats.unparseable = stats.requested - stats.parsed
    else:
        steps = [build_reader(*parse_entry(e, "readers")) for e in cfg.readers]
        steps += [build_step(*parse_entry(e, "steps")) for e in cfg.steps]
        stream, _ = run_pipeline(steps)
        docs = sample_documents(stream, cfg.sample, cfg.seed)
        labels = label_documents(
            docs, make_oracle(cfg.oracle), max_file_chars=cfg.max_file_chars, stats=stats
        )
        with open(out / "labels.jsonl", "w", encoding="utf-8") as f:
            for doc, lb in zip(docs, labels, strict=True):
                f.write(json.dumps({**asdict(lb), "text": doc.text}, ensure_ascii=False) + "\n")
    usable = [(d, lb.score) for d, lb in zip(docs, labels, strict=True) if lb.score is not None]
    metrics: dict[str, Any] = {
        "requested": stats.requested,
        "parsed": stats.parsed,
        "unparseable": stats.unparseable,
        "unparseable_examples": stats.examples,
    }
    if len(usable) < 2:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2), "utf-8")
        raise DataError(
            f"only {len(usable)} of {stats.requested} oracle answers had a parsable rating; "
            f"see {out / 'labels.jsonl'} (is the oracle a capable chat model?)"
        )
    featurizer = Featurizer(tuple(cfg.features), cfg.lm_model, cfg.lm_max_tokens)
    x = featurizer([d for d, _ in usable])
    y = np.array([s for _, s in usable], dtype=np.float64)
    metrics.update(trained_on=len(y), label_mean=float(y.mean()), cv_mae=cross_validate(x, y, cfg.alpha))
    scorer = RegressionScorer(featurizer, RidgeModel.fit(x, y, cfg.alpha), metrics)
    scorer.save(out / "model.json")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), "utf-8")
    return scorer, metrics


def add_quality_train_args(p: argparse.ArgumentParser) -> None:
    """The flags of `codelm data quality-train` (cli.py calls this, then `quality_train_from_args`)."""
    p.add_argument("config", help="quality-training YAML (see configs/data/quality-scorer.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")


def quality_train_from_args(args: argparse.Namespace) -> Path:
    """Entry point of `codelm data quality-train`; prints the metrics, returns the model path."""
    cfg = load_config_file(QualityTrainConfig, args.config, args.set, what="quality-training config")
    _, metrics = train_quality_scorer(cfg)
    print(json.dumps({k: v for k, v in metrics.items() if k != "unparseable_examples"}, indent=2))
    return Path(cfg.output) / "model.json"
