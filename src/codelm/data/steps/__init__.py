"""Pipeline steps, one module each: filters, dedup, decontamination, redaction.

| step | module | drops (reason) or modifies |
|---|---|---|
| `LanguageFilter` | language | `other_language`, `unknown_language` |
| `HeuristicFilter` | heuristics | `too_short`, `long_line`, `long_mean_line`, `low_alphanumeric`, ... |
| `SyntaxFilter` | syntax | `syntax_error` |
| `ExactDedup` | exact_dedup | `exact_duplicate` |
| `NearDedup` | near_dedup | `near_duplicate` |
| `Decontaminate` | decontam | `contaminated:<benchmark>` |
| `PiiRedactor` | pii | modifies: `email`, `ip_address`, `aws_key`, ... |
| `QualityScorer` | quality | annotates `metadata["quality"]` (0-10) |
| `QualityFilter` | quality | `low_quality` (bottom X% by score, or below a threshold) |
| `PackRepos` | pack_repos | merges a repository's files into one document: `merged_into_repo` |

ExactDedup, NearDedup, QualityFilter (percentile) and PackRepos are global steps
(`codelm.data.global_step`): an executor runs them across all shards at a stage boundary.
"""

from codelm.data.steps.decontam import DecontamConfig, Decontaminate, NgramIndex
from codelm.data.steps.exact_dedup import ExactDedup, content_hash
from codelm.data.steps.heuristics import HeuristicFilter, HeuristicsConfig, heuristic_reason
from codelm.data.steps.language import LanguageFilter
from codelm.data.steps.near_dedup import NearDedup
from codelm.data.steps.pack_repos import PackRepos
from codelm.data.steps.pii import PiiConfig, PiiRedactor
from codelm.data.steps.quality import QualityFilter, QualityScorer
from codelm.data.steps.syntax import SyntaxFilter, python_syntax_ok

__all__ = [
    "DecontamConfig",
    "Decontaminate",
    "ExactDedup",
    "HeuristicFilter",
    "HeuristicsConfig",
    "LanguageFilter",
    "NearDedup",
    "NgramIndex",
    "PackRepos",
    "PiiConfig",
    "PiiRedactor",
    "QualityFilter",
    "QualityScorer",
    "SyntaxFilter",
    "content_hash",
    "heuristic_reason",
    "python_syntax_ok",
]
