"""Keep the code-related pages of a web or documentation corpus (Seed-Coder's web source, §2.2).

`model: PATH` scores each page with a classifier trained by `codelm.data.code_related` (seed
labels -> linear model on hashed n-grams -> F1-best threshold) and keeps scores at or above its
threshold (or `threshold`, when given); `model: heuristic` uses the seed rules' score itself
(`heuristic_score`, default threshold 0.3), which needs no training: on Debian's Python docs 90%
of pages score above 0.26, while 90% of Debian's copyright files score below 0.27. Every document gets
`metadata["code_related"]` (the score, 4 decimals); the others go as `not_code_related`.
"""

from __future__ import annotations

from pathlib import Path

from codelm.data.code_related import CodeRelatedModel, heuristic_score
from codelm.data.document import DataError, Document
from codelm.data.pipeline import Filter
from codelm.data.writers import JsonlWriter

#: the recall threshold of the seed heuristic (its confident-positive seed label is 0.5)
HEURISTIC_THRESHOLD = 0.3


class CodeRelatedFilter(Filter):
    """Drop pages the classifier (or the seed heuristic) does not find code-related."""

    def __init__(
        self,
        model: str = "heuristic",
        *,
        threshold: float | None = None,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise DataError(f"code_related_filter: threshold must be in [0, 1], got {threshold}")
        if model == "heuristic":
            self.model: CodeRelatedModel | None = None
            self.threshold = HEURISTIC_THRESHOLD if threshold is None else threshold
        else:
            if not Path(model).is_file():
                hint = "train one: python -m codelm.data.code_related"
                raise DataError(f"code_related_filter: no model file {model} ({hint})")
            self.model = CodeRelatedModel.load(model)
            self.threshold = self.model.threshold if threshold is None else threshold

    def filter(self, doc: Document) -> bool | str:
        score = heuristic_score(doc.text) if self.model is None else self.model.score(doc.text)
        doc.metadata["code_related"] = round(score, 4)
        return True if score >= self.threshold else "not_code_related"
