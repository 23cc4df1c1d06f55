import json
import shutil

import pytest

from codelm.errors import CheckpointError
from codelm.models import FAMILY_NAMES as FAMILIES
from codelm.models.detect import detect_family


@pytest.mark.parametrize("family", FAMILIES)
def test_detects_each_tiny_family(tiny_checkpoint, family):
    assert detect_family(tiny_checkpoint(family)).name == family


def test_unknown_model_type_says_so(tiny_checkpoint, tmp_path):
    d = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint("llama"), d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "qwen2"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="model_type 'qwen2' is not one of.*--family"):
        detect_family(d)


def test_llama_without_known_tokens_is_not_guessed(tiny_checkpoint, tmp_path):
    d = tmp_path / "ckpt"
    d.mkdir()
    shutil.copy(tiny_checkpoint("llama") / "config.json", d / "config.json")
    with pytest.raises(CheckpointError, match="neither Seed-Coder nor codelm"):
        detect_family(d)


def test_missing_config(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        detect_family(tmp_path)
