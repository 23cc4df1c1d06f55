"""Quality scoring in the manner of Seed-Coder (report §2.1): oracle labels, a regression scorer.

`features` (hand-crafted code features), `heuristic` (the default scorer: rules, no model),
`oracle` (the prompt, robust rating parsing, in-process engine or OpenAI-compatible endpoint),
`regression` (ridge on code and optional LM features; save/load), `train` (label a sample and
fit). The pipeline steps are `codelm.data.steps.quality.QualityScorer` and `QualityFilter`.
"""

from codelm.data.quality.features import FEATURE_NAMES, code_features, feature_matrix
from codelm.data.quality.heuristic import HeuristicScorer, heuristic_scores
from codelm.data.quality.oracle import EngineChat, OpenAIChat, OracleStats, label_documents, parse_rating
from codelm.data.quality.regression import Featurizer, RegressionScorer, RidgeModel, load_scorer

__all__ = [
    "FEATURE_NAMES",
    "EngineChat",
    "Featurizer",
    "HeuristicScorer",
    "OpenAIChat",
    "OracleStats",
    "RegressionScorer",
    "RidgeModel",
    "code_features",
    "feature_matrix",
    "heuristic_scores",
    "label_documents",
    "load_scorer",
    "parse_rating",
]
