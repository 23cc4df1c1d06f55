"""Keep the commits worth learning a code change from (Seed-Coder's commit source, report §2.2).

Seed-Coder takes commits of repositories with at least 100 stars, 10 forks, 100 commits and 100
days of activity, and keeps commits whose change a model can learn from. The report publishes
the repository thresholds but not its per-commit rules, so those below are ours, each one field
of `CommitFilterConfig` (None turns it off) with its drop reason in brackets:

* message quality: empty, too few words in the subject, a GitHub web-UI default ("Update
  README.md", "Add files via upload"), a placeholder ("wip", "fix", "."), or a changelog dump;
* diff size: lines changed (added + removed) and characters of the patch;
* files touched: a commit touching many files is a refactor or a vendored import;
* bot commits: author names and emails of dependency bots and CI, and dependabot's
  "Bump x from 1 to 2" messages;
* repository quality and popularity: `repo_commits` / `repo_days` (the reader computes them from
  the history) and `repo_stars` / `repo_forks` where metadata exists; a rule whose metadata is
  missing passes the commit and counts it as `unchecked:<key>`.

Documents are the `git_commits` reader's: the patch in `text`, the rest in metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codelm.data.config import StageConfig
from codelm.data.document import DataError, Document
from codelm.data.pipeline import Filter
from codelm.data.writers import JsonlWriter

#: author names / emails of bots (GitHub marks app accounts with "[bot]")
BOT_AUTHORS = re.compile(
    r"\[bot\]|dependabot|renovate|greenkeeper|github-actions|pre-commit-ci|snyk-bot|allcontributors"
    r"|imgbot|pyup-bot|semantic-release-bot|weblate|transifex",
    re.IGNORECASE,
)
BOT_MESSAGES = re.compile(r"^(?:bump \S+ from \S+ to \S+|\[pre-commit\.ci\]|\[bot\])", re.IGNORECASE)
#: subjects that say nothing about the change: web-UI defaults and placeholders
GENERIC_SUBJECTS = re.compile(
    r"^(?:(?:update|create|delete|add|rename)\s+\S+|add files via upload|initial commit|first commit"
    r"|wip|fix|fixes|fixed|update|updates|changes|minor|minor changes|misc|typo|test|tmp|temp|\W*)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CommitFilterConfig(StageConfig):
    """Thresholds of the commit rules; None disables a rule."""

    #: [short_message] fewer words than this in the subject (the first line)
    min_subject_words: int | None = 3
    #: [long_message] more characters than this: changelogs and squashed histories
    max_message_chars: int | None = 10_000
    #: [generic_message] drop web-UI default and placeholder subjects
    drop_generic: bool = True
    #: [no_change] fewer changed lines than this (mode-only changes, pure renames)
    min_changed_lines: int | None = 1
    #: [too_many_lines] more changed lines than this
    max_changed_lines: int | None = 1000
    #: [large_diff] more characters of patch than this
    max_diff_chars: int | None = 100_000
    #: [too_many_files] more changed files than this
    max_files: int | None = 16
    #: [bot_commit] drop commits of bots (BOT_AUTHORS, BOT_MESSAGES)
    drop_bots: bool = True
    #: [small_repository] Seed-Coder: 100 commits, 100 days, 100 stars, 10 forks
    min_repo_commits: int | None = None
    min_repo_days: int | None = None
    min_repo_stars: int | None = None
    min_repo_forks: int | None = None

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise DataError(f"CommitFilterConfig.{name} must be >= 0, got {value}")


def changed_lines(patch: str) -> int:
    """Added plus removed lines of a unified diff (file headers `---`/`+++` excluded)."""
    n = 0
    for line in patch.splitlines():
        if line.startswith(("+", "-")) and not line.startswith(("+++ ", "--- ")):
            n += 1
    return n


class CommitFilter(Filter):
    """Drop commits that break a rule of `CommitFilterConfig`, with that rule's reason."""

    config_class = CommitFilterConfig

    def __init__(
        self,
        config: CommitFilterConfig | None = None,
        *,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        self.config = config or CommitFilterConfig()

    def filter(self, doc: Document) -> bool | str:
        cfg, meta = self.config, doc.metadata
        message = str(meta.get("message") or "").strip()
        subject = message.split("\n", 1)[0].strip()
        if not message:
            return "empty_message"
        if cfg.drop_bots and (
            BOT_AUTHORS.search(f"{meta.get('author', '')} {meta.get('author_email', '')}")
            or BOT_MESSAGES.search(subject)
        ):
            return "bot_commit"
        if cfg.drop_generic and GENERIC_SUBJECTS.match(subject):
            return "generic_message"
        if cfg.min_subject_words is not None and len(subject.split()) < cfg.min_subject_words:
            return "short_message"
        if cfg.max_message_chars is not None and len(message) > cfg.max_message_chars:
            return "long_message"
        files = meta.get("files") or []
        if cfg.max_files is not None and len(files) > cfg.max_files:
            return "too_many_files"
        if cfg.max_diff_chars is not None and len(doc.text) > cfg.max_diff_chars:
            return "large_diff"
        lines = changed_lines(doc.text)
        if cfg.min_changed_lines is not None and lines < cfg.min_changed_lines:
            return "no_change"
        if cfg.max_changed_lines is not None and lines > cfg.max_changed_lines:
            return "too_many_lines"
        for key, minimum in (
            ("repo_commits", cfg.min_repo_commits),
            ("repo_days", cfg.min_repo_days),
            ("repo_stars", cfg.min_repo_stars),
            ("repo_forks", cfg.min_repo_forks),
        ):
            if minimum is None:
                continue
            value = meta.get(key)
            if not isinstance(value, (int, float)):
                self.stats.counters[f"unchecked:{key}"] += 1
            elif value < minimum:
                return "small_repository"
        return True
