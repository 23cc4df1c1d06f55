"""The trained quality scorer: ridge regression on code features, optionally with LM embeddings.

Seed-Coder fine-tunes a 1.3B model with a regression head on the oracle's labels (MSE on scores
rescaled to [0, 1]; regression so the threshold can be tuned later). A much cheaper stand-in that
keeps the same contract (score in, threshold later) is a linear model on features:

* `code` features (`features.code_features`), always available, about a millisecond per file;
* `lm` features: the mean last hidden state of a causal LM checkpoint over the file's first
  `lm_max_tokens` tokens (any size; a tiny one for tests, a real code model in production).

`RidgeModel.fit` standardizes the features and solves (X'X + alpha I) w = X'y in closed form
with numpy; predictions are clipped to 0-10. The model saves as one JSON file naming its feature
sets (and the LM checkpoint), so `load_scorer(path)` rebuilds the same featurizer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codelm.data.document import DataError, Document
from codelm.data.quality.features import FEATURE_NAMES, feature_matrix

FEATURE_SETS = ("code", "lm")


class LMFeaturizer:
    """Mean-pooled last hidden states of a causal LM checkpoint (CPU or CUDA, no gradients)."""

    def __init__(
        self, model: str, max_tokens: int = 512, batch_size: int = 8, device: str | None = None
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path, self.max_tokens, self.batch_size = model, max_tokens, batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model).to(self.device).eval()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def __call__(self, docs: Sequence[Document]) -> np.ndarray:
        import torch

        out = np.zeros((len(docs), self.dim), dtype=np.float64)
        for start in range(0, len(docs), self.batch_size):
            batch = docs[start : start + self.batch_size]
            ids = [
                self.tokenizer(d.text, add_special_tokens=False)["input_ids"][: self.max_tokens]
                or [self.pad_id]
                for d in batch
            ]
            width = max(map(len, ids))
            x = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(ids), width), dtype=torch.long)
            for i, row in enumerate(ids):
                x[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
            with torch.no_grad():
                hidden = self.model(
                    input_ids=x.to(self.device),
                    attention_mask=mask.to(self.device),
                    output_hidden_states=True,
                ).hidden_states[-1]
            m = mask.to(self.device).unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
            out[start : start + len(batch)] = pooled.float().cpu().numpy()
        return out


@dataclass
class Featurizer:
    """The feature sets a model uses, concatenated: `code`, and `lm` with its checkpoint."""

    sets: tuple[str, ...] = ("code",)
    lm_model: str | None = None
    lm_max_tokens: int = 512
    _lm: LMFeaturizer | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.sets) - set(FEATURE_SETS)
        if unknown or not self.sets:
            raise DataError(f"feature sets must be a non-empty subset of {FEATURE_SETS}, got {self.sets}")
        if "lm" in self.sets and not self.lm_model:
            raise DataError("the `lm` feature set needs lm_model: a checkpoint directory")

    def __call__(self, docs: Sequence[Document]) -> np.ndarray:
        parts = []
        if "code" in self.sets:
            parts.append(feature_matrix(docs))
        if "lm" in self.sets:
            if self._lm is None:
                self._lm = LMFeaturizer(str(self.lm_model), self.lm_max_tokens)
            parts.append(self._lm(docs))
        return np.concatenate(parts, axis=1)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_lm": None}  # workers load the LM themselves


@dataclass
class RidgeModel:
    """Standardized ridge regression; `weights` includes no bias (it is `bias`)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    alpha: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> RidgeModel:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(y) or len(y) < 2:
            raise DataError(f"ridge fit needs (n, d) features and n >= 2 labels, got {x.shape} and {y.shape}")
        mean, scale = x.mean(0), x.std(0)
        scale[scale < 1e-12] = 1.0  # constant features: weight 0 after centering
        z = (x - mean) / scale
        bias = float(y.mean())
        w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - bias))
        return cls(mean, scale, w, bias, alpha)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.clip(((x - self.mean) / self.scale) @ self.weights + self.bias, 0.0, 10.0)


def cross_validate(x: np.ndarray, y: np.ndarray, alpha: float, folds: int = 5, seed: int = 0) -> float:
    """Mean absolute error of k-fold cross-validation (Seed-Coder reports MAE: 1.37 on 0-10)."""
    idx = np.random.default_rng(seed).permutation(len(y))
    errors = []
    for k in range(min(folds, len(y))):
        test = idx[k::folds]
        train = np.setdiff1d(idx, test)
        if len(train) < 2:
            continue
        model = RidgeModel.fit(x[train], y[train], alpha)
        errors.append(np.abs(model.predict(x[test]) - y[test]))
    return float(np.mean(np.concatenate(errors))) if errors else float("nan")


class RegressionScorer:
    """A featurizer plus a ridge model: the trained scorer of the quality steps."""

    def __init__(
        self, featurizer: Featurizer, model: RidgeModel, metrics: dict[str, Any] | None = None
    ) -> None:
        self.featurizer, self.model, self.metrics = featurizer, model, metrics or {}
        self.name = f"ridge[{'+'.join(featurizer.sets)}]"

    def score(self, docs: Sequence[Document]) -> np.ndarray:
        if not docs:
            return np.empty(0)
        return self.model.predict(self.featurizer(docs))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        m, f = self.model, self.featurizer
        record = {
            "kind": "codelm.quality.ridge",
            "version": 1,
            "feature_sets": list(f.sets),
            "code_features": list(FEATURE_NAMES),
            "lm_model": f.lm_model,
            "lm_max_tokens": f.lm_max_tokens,
            "mean": m.mean.tolist(),
            "scale": m.scale.tolist(),
            "weights": m.weights.tolist(),
            "bias": m.bias,
            "alpha": m.alpha,
            "metrics": self.metrics,
        }
        path.write_text(json.dumps(record, indent=1), "utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> RegressionScorer:
        try:
            record = json.loads(Path(path).read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"cannot read quality model {path}: {e}") from e
        if record.get("kind") != "codelm.quality.ridge":
            raise DataError(f"{path} is not a codelm quality model (kind={record.get('kind')!r})")
        if record["code_features"] != list(FEATURE_NAMES):
            raise DataError(f"{path} was trained on other code features; retrain it")
        featurizer = Featurizer(
            tuple(record["feature_sets"]), record.get("lm_model"), record.get("lm_max_tokens", 512)
        )
        model = RidgeModel(
            np.array(record["mean"]),
            np.array(record["scale"]),
            np.array(record["weights"]),
            float(record["bias"]),
            float(record["alpha"]),
        )
        return cls(featurizer, model, record.get("metrics"))


def load_scorer(spec: str) -> Any:
    """`heuristic` (the default, no model) or the path of a model saved by `RegressionScorer.save`."""
    if spec == "heuristic":
        from codelm.data.quality.heuristic import HeuristicScorer

        return HeuristicScorer()
    if not Path(spec).is_file():
        raise DataError(
            f"quality scorer must be 'heuristic' or a model file saved by training; no file {spec!r}"
        )
    return RegressionScorer.load(spec)
