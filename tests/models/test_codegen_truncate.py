"""The truncate_before_pattern cases of shared/research/models.md section 5."""

from codelm.models import get_family
from codelm.models.codegen_truncate import codegen_truncate

README = [r"\n\n^#", "^'''", "\n\n\n"]


def test_none_or_empty_is_untouched_even_with_two_prints():
    text = "print(1)\nprint(2)\n"
    assert codegen_truncate(text, None) == text
    assert codegen_truncate(text, []) == text


def test_caret_hash_on_text_starting_with_comment_returns_empty():
    assert codegen_truncate("# this function prints\ndef hello():\n    pass\n", ["^#"]) == ""


def test_readme_patterns_cut_at_triple_newline():
    text = "# print hello\ndef hello():\n    print('hi')\n\n\n# test\nhello()\n"
    assert codegen_truncate(text, README) == "# print hello\ndef hello():\n    print('hi')"


def test_nomatch_pattern_still_applies_print_and_def_heuristics():
    assert codegen_truncate("print(1)\nx = 2\nprint(3)\n", ["ZZZ_nomatch"]) == "print(1)\nx = 2\n"
    assert (
        codegen_truncate("def a():\n    pass\ndef b():\n    pass\n", ["ZZZ_nomatch"])
        == "def a():\n    pass\n"
    )


def test_def_heuristic_runs_after_print_heuristic():
    text = "def a():\n    pass\nprint(1)\ndef b():\n    pass\nprint(2)\n"
    # cut at the second print first, then at the second def in what is left
    assert codegen_truncate(text, ["ZZZ"]) == "def a():\n    pass\nprint(1)\n"


def test_earliest_terminal_wins_and_multiline_only():
    text = "    return x\n\n# comment\nfoo = '''doc'''\n"
    assert codegen_truncate(text, README) == "    return x"
    # no DOTALL: '.' does not cross lines
    assert codegen_truncate("a\nb", ["a.b"]) == "a\nb"


def test_family_carries_readme_patterns():
    assert list(get_family("codegen1").truncate_before_pattern) == README
