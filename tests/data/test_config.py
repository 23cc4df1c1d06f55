"""Stage configs load from YAML mappings and name the known fields on a typo."""

import dataclasses

import pytest
import yaml

from codelm.config import ConfigError
from codelm.data import DataError
from codelm.data.minhash import MinHashConfig
from codelm.data.steps import DecontamConfig, HeuristicsConfig, PiiConfig

YAML = """
heuristics: {max_line_length: 2000, min_chars: null}
minhash: {shingle_size: 7, num_bands: 20, rows_per_band: 10, verify: false}
decontam: {ngram: 13}
pii: {emails: false}
"""


def test_configs_load_from_yaml():
    raw = yaml.safe_load(YAML)
    assert HeuristicsConfig.from_dict(raw["heuristics"]).min_chars is None
    assert MinHashConfig.from_dict(raw["minhash"]).num_perm == 200
    assert DecontamConfig.from_dict(raw["decontam"]).ngram == 13
    assert PiiConfig.from_dict(raw["pii"]).emails is False
    assert MinHashConfig.from_dict(None) == MinHashConfig()


@pytest.mark.parametrize("cls", [HeuristicsConfig, MinHashConfig, DecontamConfig, PiiConfig])
def test_typos_name_the_known_fields(cls):
    with pytest.raises(ConfigError, match=f"unknown key 'not_a_field' in {cls.__name__}.*known:"):
        cls.from_dict({"not_a_field": 1})
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(ConfigError, match=f"did you mean '{first}'"):
        cls.from_dict({first + "x": 1})


def test_pii_config_validation():
    with pytest.raises(DataError, match="entropy"):
        PiiConfig(entropy_bits=0)
