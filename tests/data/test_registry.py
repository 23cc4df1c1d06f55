"""The step registry: every name imports lazily, typos get "did you mean", settings are checked."""

import re
from pathlib import Path

import pytest

from codelm.data import DataError
from codelm.data.pipeline import PipelineStep
from codelm.data.readers import Reader
from codelm.data.registry import READERS, STEPS, build_reader, build_step, import_attr
from codelm.data.steps import HeuristicFilter, NearDedup

DOCS = Path(__file__).resolve().parents[2] / "docs" / "data.md"


@pytest.mark.parametrize("name, spec", sorted({**READERS, **STEPS}.items()))
def test_every_entry_imports_and_is_documented(name, spec):
    cls = import_attr(spec)
    assert issubclass(cls, Reader if name in READERS else PipelineStep)
    assert re.search(rf"`{name}`", DOCS.read_text()), f"{name} is missing from docs/data.md"


def test_settings_split_between_config_and_constructor():
    step = build_step("heuristic_filter", {"max_line_length": 2000, "name": "rules"})
    assert isinstance(step, HeuristicFilter) and step.config.max_line_length == 2000 and step.name == "rules"
    near = build_step("near_dedup", {"threshold": 0.8, "num_bands": 20})
    assert isinstance(near, NearDedup) and near.config.num_bands == 20


def test_did_you_mean():
    with pytest.raises(DataError, match="did you mean 'near_dedup'"):
        build_step("near_dedupe", {})
    with pytest.raises(DataError, match="did you mean 'max_line_length'"):
        build_step("heuristic_filter", {"max_line_lenght": 3})
    with pytest.raises(DataError, match="did you mean 'directory'"):
        build_reader("directroy", {"root": "."})
    with pytest.raises(DataError, match="unknown setting.*'colour'"):
        build_reader("directory", {"root": ".", "colour": 1})


def test_user_steps_by_module_path():
    assert isinstance(
        build_step("codelm.data.steps.language:LanguageFilter", {"languages": ["go"]}), PipelineStep
    )
    with pytest.raises(DataError, match="has no 'Nope'"):
        build_step("codelm.data.steps.language:Nope", {})
    with pytest.raises(DataError, match="not a pipeline step"):
        build_step("codelm.data.document:DataError", {})


def test_decontaminate_needs_benchmarks():
    with pytest.raises(DataError, match="benchmarks: DIR"):
        build_step("decontaminate", {})
