"""The code-relatedness classifier: seed labels, hashed-n-gram logistic regression, threshold, P/R."""

from __future__ import annotations

import glob
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from codelm.data import DataError, Document, run_pipeline
from codelm.data.code_related import (
    CodeRelatedModel,
    features,
    heuristic_score,
    oracle_label,
    parse_yes_no,
    precision_recall,
    seed_label,
    train,
)
from codelm.data.steps.code_related import CodeRelatedFilter

from .conftest import stdlib_py_files

PY_DOCS = Path("/usr/share/doc/python3.11/html")
LICENSES = Path("/usr/share/common-licenses")

# hand-labelled pages (1: code-related), in the shapes the HTML reader writes
HAND_LABELLED = [
    (
        1,
        "Reading a file line by line\n\nOpen the file with a context manager:\n\n```\nwith open(path) as f:\n"
        "    for line in f:\n        print(line.rstrip())\n```\n\nThe `open()` function returns an iterator.",
    ),
    (
        1,
        "How do I sort a dict by value?\n\nUse `sorted(d.items(), key=lambda kv: kv[1])`. For a reversed "
        "order pass `reverse=True`; the function returns a list of tuples, not a dict.",
    ),
    (
        1,
        "Installing the CLI\n\nRun `npm install -g tool` then `tool --init`. The config file is JSON; "
        'set the `timeout` parameter to an integer number of seconds.\n\n```\n{"timeout": 30}\n```',
    ),
    (
        1,
        'Rust ownership explained\n\n```\nfn main() {\n    let s = String::from("hi");\n'
        "    take(s);\n}\n```\n"
        "After the call `s` is moved; the compiler rejects any later use of the variable.",
    ),
    (
        0,
        "Grandma's apple pie\n\nPeel six apples, slice them thin and toss them with sugar and cinnamon. "
        "Roll out the dough, fill the dish and bake for forty minutes until golden brown.",
    ),
    (
        0,
        "The match ended in a draw after the visitors equalised late in the second half. Their coach "
        "praised the defence but said the team must score more often away from home this season.",
    ),
    (
        0,
        "Walking the coastal path\n\nThe trail follows the cliffs for twelve miles. Bring water, wear "
        "good boots and check the tide tables before you set off from the harbour in the morning.",
    ),
    (
        0,
        "Pruning roses in winter keeps the plants healthy. Cut dead stems back to the base and remove "
        "crossing branches so that air can move freely through the centre of the bush.",
    ),
]


def test_seed_labels_on_hand_labelled_pages():
    assert [seed_label(text) for _, text in HAND_LABELLED] == [y for y, _ in HAND_LABELLED]
    assert heuristic_score("") == 0.0


def test_features_are_stable_and_normalised():
    a, b = features("def f(x): return x + 1"), features("def f(x): return x + 1")
    assert np.array_equal(a[0], b[0]) and np.isclose(np.linalg.norm(a[1]), 1.0)
    assert features("")[0].size == 0


def test_parse_yes_no_never_guesses():
    assert parse_yes_no("It has code. [[yes]]") == 1
    assert parse_yes_no("[[yes]] ... on second thought [[ No ]]") == 0
    assert parse_yes_no("probably yes") is None


def test_oracle_answers_that_do_not_parse_are_counted(tiny_engine):
    from codelm.data.quality import EngineChat

    chat = EngineChat(tiny_engine("llama"), max_new_tokens=8)
    docs = [Document(text, f"d{i}") for i, (_, text) in enumerate(HAND_LABELLED[:3])]
    labels, unparseable = oracle_label(docs, chat)
    assert len(labels) == 3 and unparseable == sum(label is None for label in labels)
    assert all(label in (0, 1, None) for label in labels)


def _stdlib_and_license_docs() -> list[Document]:
    """Code pages (stdlib modules as fenced docs) and prose (the Python license, paragraph groups)."""
    docs = [
        Document(
            f"The {p.stem} module\n\nSource of the module:\n\n```\n{p.read_text('utf-8')[:3000]}\n```\n",
            p.name,
        )
        for p in stdlib_py_files(120, max_bytes=30_000)
    ]
    license_txt = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    if not license_txt.is_file():
        pytest.skip(f"no {license_txt} to draw prose from")
    paragraphs = [p for p in license_txt.read_text("utf-8").split("\n\n") if len(p.split()) > 25]
    docs += [Document("\n\n".join(paragraphs[i : i + 2]), f"license-{i}") for i in range(len(paragraphs))]
    docs += [Document(text, f"hand-{i}") for i, (_, text) in enumerate(HAND_LABELLED)]
    return docs


def test_train_threshold_and_held_out_metrics(tmp_path):
    model = train(_stdlib_and_license_docs(), epochs=4)
    m = model.metrics
    assert m["split"]["test"] > 5 and 0.0 < model.threshold < 1.0
    assert m["test"]["precision"] >= 0.9 and m["test"]["recall"] >= 0.9, m
    path = model.save(tmp_path / "cr.npz")
    again = CodeRelatedModel.load(path)
    text = HAND_LABELLED[0][1]
    assert (
        again.score(text) == pytest.approx(model.score(text), abs=1e-6) and again.threshold == model.threshold
    )
    step = CodeRelatedFilter(str(path))
    kept = list(step(Document(t, f"h{i}") for i, (_, t) in enumerate(HAND_LABELLED)))
    assert all("code_related" in d.metadata for d in kept)
    assert step.stats.docs_in == 8 and sum(step.stats.dropped.values()) == 8 - len(kept)


def test_the_filter_step_with_the_heuristic_and_bad_settings(tmp_path):
    step = CodeRelatedFilter()
    kept = list(step(Document(t, f"h{i}") for i, (_, t) in enumerate(HAND_LABELLED)))
    assert [d.id for d in kept] == ["h0", "h1", "h2", "h3"] and step.stats.dropped["not_code_related"] == 4
    with pytest.raises(DataError, match="no model file"):
        CodeRelatedFilter(str(tmp_path / "none.npz"))
    with pytest.raises(DataError, match="threshold"):
        CodeRelatedFilter(threshold=2.0)
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(DataError, match="cannot load"):
        CodeRelatedFilter(str(tmp_path / "bad.npz"))
    with pytest.raises(DataError, match="both classes"):
        train([Document(t, f"h{i}") for i, (y, t) in enumerate(HAND_LABELLED) if y == 1])


@pytest.mark.slow
@pytest.mark.skipif(not (PY_DOCS / "library").is_dir(), reason="Debian's python3.11-doc is not installed")
@pytest.mark.skipif(not LICENSES.is_dir(), reason="no /usr/share/common-licenses to draw prose from")
def test_on_debian_docs_against_license_texts():
    from codelm.data.code_related import _plain_texts
    from codelm.data.readers.docs import HtmlReader

    pytest.importorskip("resiliparse", reason="resiliparse is not installed (pip install 'codelm[data]')")

    pages = list(run_pipeline([HtmlReader(str(PY_DOCS / "library"))])[0])
    prose = _plain_texts([str(LICENSES), *sorted(glob.glob("/usr/share/doc/*/copyright"))[:300]])
    model = train(pages + prose)
    assert model.metrics["test"]["precision"] >= 0.9 and model.metrics["test"]["recall"] >= 0.9, model.metrics
    metrics = precision_recall(
        np.array([model.score(t) for _, t in HAND_LABELLED]),
        np.array([y for y, _ in HAND_LABELLED]),
        model.threshold,
    )
    assert (
        metrics["n"] == 8
    )  # reported, not asserted: hand-labelled pages are far from Python docs vs licenses
    print("hand-labelled:", metrics, "held-out:", model.metrics["test"])
