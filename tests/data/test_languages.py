"""Language detection from file name, extension and shebang; the table's grammars load."""

import pytest

from codelm.data.languages import detect_language, grammar_for, language_from_shebang, language_table


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("pkg/mod.py", None, "python"),
        ("src/Main.JAVA", None, "java"),
        ("lib/x.hpp", None, "cpp"),
        ("a/b/Makefile", None, "makefile"),
        ("Dockerfile", None, "dockerfile"),
        ("CMakeLists.txt", None, "cmake"),
        ("bin/tool", "#!/usr/bin/env python3.11\nprint(1)\n", "python"),
        ("bin/run", "#!/bin/bash\nset -e\n", "shell"),
        ("bin/run", "#! /usr/bin/env node\n", "javascript"),
        ("bin/x", "#!/usr/bin/env unknown-thing\n", None),
        ("notes.unknownext", "hello", None),
        (None, None, None),
    ],
)
def test_detect(path, text, expected):
    assert detect_language(path, text) == expected


def test_filename_wins_over_extension_and_shebang_needs_no_extension():
    assert detect_language("CMakeLists.txt") == "cmake"  # not "text"
    assert language_from_shebang("no shebang") is None


def test_every_grammar_in_the_table_loads_offline():
    pack = pytest.importorskip("tree_sitter_language_pack", reason="tree-sitter-language-pack not installed")
    grammars = {g for g in language_table().grammars.values() if g}
    assert len(grammars) > 40
    for g in sorted(grammars):
        assert pack.get_parser(g) is not None, g
    assert grammar_for("python") is None  # checked by compile(), not tree-sitter
    assert grammar_for(None) is None
