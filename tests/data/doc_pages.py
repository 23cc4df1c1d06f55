"""An HTML page with navigation, a highlighted code block and a footer; Debian's Python docs."""

from __future__ import annotations

from pathlib import Path

import pytest

PY_DOCS = Path("/usr/share/doc/python3.11/html")
needs_py_docs = pytest.mark.skipif(
    not (PY_DOCS / "library" / "json.html").is_file(),
    reason="Debian's python3.11-doc is not installed (make system-deps)",
)

CODE = (
    'def greet(name):\n    """Say hello."""\n    print(f"hello {name}")  # a ``` inside\n\n\n'
    '    return {"a": [1, 2]}\n'
)
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Greeting</title></head>
<body><nav><a href="/">Home</a> | <a href="/blog">Blog</a> | <a href="/about">About</a></nav>
<main><article><h1>How to greet people in Python</h1>
<p>This tutorial shows how a small Python function prints a greeting for the name it is given, and
why the function returns a dictionary that other modules of the program can use later on.</p>
<div class="highlight"><pre><span class="k">def</span> greet(name):
    <span class="s">&quot;&quot;&quot;Say hello.&quot;&quot;&quot;</span>
    print(f&quot;hello {name}&quot;)  # a ``` inside


    return {&quot;a&quot;: [1, 2]}
</pre></div>
<p>Call it with any string. The function has no side effects besides printing to the terminal.</p>
</article></main><footer>Copyright 2024 Example Corp. All rights reserved.</footer></body></html>
"""
