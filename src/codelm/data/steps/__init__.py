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
"""

from codelm.data.steps.decontam import DecontamConfig, Decontaminate, NgramIndex
from codelm.data.steps.exact_dedup import ExactDedup, content_hash
from codelm.data.steps.heuristics import HeuristicFilter, HeuristicsConfig, heuristic_reason
from codelm.data.steps.language import LanguageFilter
from codelm.data.steps.near_dedup import NearDedup
from codelm.data.steps.pii import PiiConfig, PiiRedactor
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
    "PiiConfig",
    "PiiRedactor",
    "SyntaxFilter",
    "content_hash",
    "heuristic_reason",
    "python_syntax_ok",
]
