"""function_documents: modules cut into their documented functions, one document each, counted."""

import ast

import pytest

from codelm.data.document import DataError, Document
from codelm.data.functions import documented_sources, top_level_functions
from codelm.data.pipeline import SOURCE_KEY, run_pipeline
from codelm.data.steps.functions import FunctionDocuments
from codelm.recipes.derive import documented_functions

MODULE = '''"""A module."""
import math


def hypot(a, b):
    """Length of the hypotenuse of a right triangle with legs a and b."""
    # as written: comments stay
    return math.sqrt(a * a + b * b)


@property
def area(r):
    """Area of a circle of radius r, in square units."""
    return math.pi * r * r


def _private(x):
    """A private helper that no document should be made of."""
    return x


def short(x):
    """Too short."""
    return x


class Shape:
    def side(self):
        """A method: not a top-level function, so not a document."""
        return 1
'''


def test_each_documented_function_becomes_a_document_as_written():
    doc = Document(MODULE, "pkg/geo.py", repo="pkg", path="geo.py", language="python")
    doc.metadata[SOURCE_KEY] = "site"
    out, stats = run_pipeline([FunctionDocuments()], [doc])
    out = list(out)
    assert [d.id for d in out] == ["pkg/geo.py#hypot", "pkg/geo.py#area"]
    assert out[0].text.startswith('def hypot(a, b):\n    """Length') and "# as written" in out[0].text
    assert out[1].text.startswith("def area(r):")  # the decorator stays out, as in the SFT pairs
    assert all(d.text.endswith("\n") and d.text[:-1] in MODULE for d in out)
    assert (out[0].repo, out[0].path, out[0].language) == ("pkg", "geo.py", "python")
    assert out[0].metadata == {"function": "hypot", SOURCE_KEY: "site"}
    step = stats.steps["function_documents"]
    assert (step.docs_in, step.kept, step.created) == (1, 2, 1)


def test_modules_without_one_are_dropped_and_counted():
    docs = [
        Document("x = 1\n", "a.py", language="python"),
        Document("def broken(:\n", "b.py", language="python"),
        Document("(" * 500_000, "deep.py", language="python"),  # too deep for the parser: no crash
        Document('def f(x):\n    """A lone \ud800 surrogate here."""\n', "s.py", language="python"),
        Document("fn main() {}\n", "c.rs", language="rust"),
        Document(MODULE, "d.py", language="python"),
    ]
    out, stats = run_pipeline([FunctionDocuments()], docs)
    assert [d.id for d in out] == ["d.py#hypot", "d.py#area"]
    step = stats.steps["function_documents"]
    assert dict(step.dropped) == {"no_documented_function": 1, "does_not_parse": 3, "not_python": 1}
    step.check("function_documents")  # in + created == kept + dropped


def test_the_code_limit_counts_the_function_without_its_docstring():
    long_doc = '"""' + "Describes at length. " * 100 + '"""'
    text = f"def f(x):\n    {long_doc}\n    return x + 1\n"
    assert [n for n, _ in documented_sources(text, max_code_chars=40)] == ["f"]  # a long docstring is fine
    assert not list(documented_sources(text, max_code_chars=10))
    with pytest.raises(DataError, match="max_code_chars >= 1"):
        FunctionDocuments(max_code_chars=0)


def test_the_same_functions_as_the_derived_function_documents():
    """The step and the recipe's derived documents agree on which functions and their text."""
    step = [d.text for d in FunctionDocuments()([Document(MODULE, "m.py", language="python")])]
    assert step == [f.document() for f in documented_functions([MODULE])]
    names = [fn.name for fn in top_level_functions(ast.parse(MODULE))]
    assert names == ["hypot", "area", "_private", "short"]
