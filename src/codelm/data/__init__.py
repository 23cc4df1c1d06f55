"""Data curation: read code corpora, filter, deduplicate, decontaminate and redact them.

A pipeline is a plain list of steps (`codelm.data.pipeline`); run it with `run_pipeline`:

    from codelm.data import DirectoryReader, run_pipeline
    from codelm.data.steps import ExactDedup, HeuristicFilter, NearDedup, SyntaxFilter

    docs, stats = run_pipeline([DirectoryReader("repos/"), HeuristicFilter(), SyntaxFilter(),
                                ExactDedup(), NearDedup()])
    for doc in docs: ...
    print(stats.summary())

A whole curation (readers, steps, executor, output) is one YAML file run by
`codelm data curate CONFIG` (`curate`, `curate_config`, `registry`), sharded over local processes
or Ray by `executors/`, with a report (`report`, `profile`). See docs/data.md.

Modules: `document` (the record), `stats` (counts that merge across shards), `pipeline` (step
bases), `global_step` (corpus-wide steps in three phases), `readers/` (trees, JSONL, Parquet,
hub), `writers` (JSONL out), `languages` (detection, table in languages.yaml), `minhash` + `lsh`
(vectorized near-dedup core), `benchmarks` (benchmark files for decontamination), `steps/` (one
module per step), `packing/` (CodeGemma repository ordering), `quality/` (Seed-Coder quality
scoring), `executors/`, `registry`, `curate_config`, `curate`, `profile`, `report`.
"""

from codelm.data.document import DataError, Document
from codelm.data.global_step import GlobalStep
from codelm.data.pipeline import CountedStep, Filter, PipelineStep, Step, as_step, run_pipeline
from codelm.data.readers import DirectoryReader, HubReader, JsonlReader, ParquetReader
from codelm.data.stats import PipelineStats, StepStats
from codelm.data.writers import JsonlWriter

__all__ = [
    "CountedStep",
    "DataError",
    "DirectoryReader",
    "Document",
    "Filter",
    "GlobalStep",
    "HubReader",
    "JsonlReader",
    "JsonlWriter",
    "ParquetReader",
    "PipelineStats",
    "PipelineStep",
    "Step",
    "StepStats",
    "as_step",
    "run_pipeline",
]
