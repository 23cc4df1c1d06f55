"""The README stays a page a newcomer reads, and the documentation's links and file map stay true.

Checked here: the README's size and its first lines (the two commands), every relative link and
anchor in README.md and docs/*.md, every `codelm ...` line the README shows against the real
argument parser, and docs/files.md against the modules under src/codelm.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from codelm.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
FILES_MAP = ROOT / "docs" / "files.md"
MAX_README_CHARS = 15_000  # issue 10: the full references live in docs/, the README stays readable

_FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """Markdown without fenced blocks and code spans, where link syntax is only ever literal text."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives the headings of `path` (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_readme_is_short():
    size = len(README.read_text(encoding="utf-8"))
    assert size <= MAX_README_CHARS, (
        f"README.md has {size:,} characters (at most {MAX_README_CHARS:,}): move references into docs/"
    )


def test_readme_starts_with_the_two_commands():
    lines = [line for line in README.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0].startswith("# "), "the README opens with its title"
    assert lines[1].startswith("```"), "the two commands come right after the title, in a code block"
    assert lines[2].split("#")[0].split() == ["make", "quickstart"]
    assert lines[3].split("#")[0].split() == ["make", "test"]
    assert lines[4].startswith("```")


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc: Path):
    broken = []
    for target in _LINK.findall(_prose(doc.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        dest = (doc.parent / path_part).resolve() if path_part else doc
        if not dest.exists():
            shown = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest
            broken.append(f"{target} (no file {shown})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading with anchor #{anchor} in {dest.name})")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links: " + "; ".join(broken)


def _readme_commands() -> list[str]:
    """The `codelm ...` command lines of the README's bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("codelm "):
                commands.append(line)
    return commands


VERBS = ("models", "complete", "infill", "chat", "serve", "data curate", "data pack", "tokenizer train")
VERBS += ("train", "eval", "run")


def test_readme_shows_every_verb():
    shown = set()
    for command in _readme_commands():
        words = shlex.split(command, comments=True)[1:]
        shown |= {words[0], " ".join(words[:2])}
    missing = [verb for verb in VERBS if verb not in shown]
    assert not missing, "the README shows no example of: " + ", ".join(f"codelm {v}" for v in missing)


@pytest.mark.parametrize("command", _readme_commands(), ids=lambda c: " ".join(c.split()[:3]))
def test_readme_commands_parse(command: str):
    """Each command the README shows is accepted by the real parser: its verb, flags and arguments
    exist (what it then does is each pillar's tests' business)."""
    argv = shlex.split(command, comments=True)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse reports a bad flag on stderr and exits 2
        pytest.fail(f"`{command}` is rejected by codelm's parser (exit {exc.code})")
    assert callable(args.func)


def _listed_modules() -> set[str]:
    """`dir/name` for every row of docs/files.md's src/codelm tables."""
    listed, where = set(), None
    for line in FILES_MAP.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^###\s+`(src/codelm/[^`]*)`", line)
        if heading:
            where = heading.group(1).rstrip("/")
        elif where and (row := re.match(r"^\|\s*`([^`]+)`\s*\|", line)):
            listed.add(f"{where}/{row.group(1)}")
    return listed


def _purpose(path: Path) -> str:
    """A module's purpose for the map: the first sentence of its docstring."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    text = " ".join(doc.strip().split("\n\n")[0].split())
    first = re.match(r"(.*?[.!?])(?:\s+[A-Z`(]|$)", text)
    return (first.group(1) if first else text).replace("|", "\\|")


def test_file_map_lists_every_module():
    listed = _listed_modules()
    modules = sorted((ROOT / "src" / "codelm").rglob("*.py"))
    missing = [p for p in modules if p.relative_to(ROOT).as_posix() not in listed]
    rows = [
        f"under ### `{p.parent.relative_to(ROOT).as_posix()}/`: | `{p.name}` | {_purpose(p)} |"
        for p in missing
    ]
    assert not rows, "docs/files.md lacks these modules; add the rows:\n" + "\n".join(rows)
    stale = sorted(m for m in listed if not any(ROOT.glob(m.rstrip("/"))))
    assert not stale, "docs/files.md lists files that do not exist (remove their rows): " + ", ".join(stale)
