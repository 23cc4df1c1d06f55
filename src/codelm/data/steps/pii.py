"""Redact personal data and secrets from code: emails, IP addresses, keys and tokens.

Follows the regex half of StarCoder's PII pipeline (bigcode-dataset/pii): find candidates with
patterns, then reject the false positives a code corpus is full of, and replace what is left by
a placeholder (`<EMAIL>`, `<IP_ADDRESS>`, `<KEY>`, `<PASSWORD>`). What is *not* redacted, on
purpose:

* IP addresses that are not globally routable: private, loopback, link-local, documentation
  ranges (`ipaddress.is_global`), well-known public DNS resolvers (8.8.8.8, 1.1.1.1, ...), and
  IPv4 strings that look like versions (first two parts one digit, as in 3.1.4.15 or
  section 8.2.4.44, or `version`/`v` just before);
  IPv6 only inside 2000::/3, the global unicast range, so `a::b` in C++ is left alone;
* emails at reserved example domains (example.com, ...) and `noreply` placeholders;
* long hex strings (hashes, checksums) and sequential or templated strings in the entropy rule.

Secret detectors: AWS access key ids, GitHub tokens, Slack tokens and webhooks, PEM private-key
blocks, JWTs, generic `api_key = "..."`-style assignments, and high-entropy quoted strings.
Every document is kept; `modified` counts replacements per kind, and the document's metadata
gets `pii: {kind: count}`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from codelm.data.config import StageConfig
from codelm.data.document import DataError, Document
from codelm.data.pipeline import PipelineStep
from codelm.data.specials import map_plain

PUBLIC_DNS = frozenset(
    {
        "8.8.8.8",
        "8.8.4.4",
        "1.1.1.1",
        "1.0.0.1",
        "9.9.9.9",
        "149.112.112.112",
        "208.67.222.222",
        "208.67.220.220",
        "2001:4860:4860::8888",
        "2001:4860:4860::8844",
        "2606:4700:4700::1111",
        "2606:4700:4700::1001",
    }
)
# RFC 2606 reserved names: used in docs and tests precisely because they are nobody's
EXAMPLE_DOMAINS = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|(?:example|test|invalid|localhost))$")

EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}(?![\w-])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\w)")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
    r".*?-----END \1-----",
    re.DOTALL,
)
AWS_KEY = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])")
GITHUB_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})"
)
SLACK_TOKEN = re.compile(
    r"xox[abposr]-[A-Za-z0-9-]{10,250}|https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"
)
JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
# `api_key = "..."`, `"password": "..."`, `secret: '...'`: the quoted value is the secret
ASSIGNED_SECRET = re.compile(  # starts at the keyword: a leading `[\w.-]*` makes the scan quadratic
    r"""(?i)(?P<name>(?:api[_-]?key|secret|token|passw(?:or)?d|passwd|pwd|credentials?|auth[_-]?key)"""
    r"""[\w.-]*)["']?\s*(?::=|=|:|=>)\s*(?P<q>["'])(?P<value>[^"'\s]{8,200})(?P=q)"""
)
QUOTED = re.compile(r"""(["'`])([A-Za-z0-9+/=_-]{20,500})\1""")
_TEMPLATED = re.compile(  # ${VAR}, {{ var }}, <your-key>, %(pw)s, xxxx, ****, placeholders
    r"^(?:\$\{.*\}|\{\{.*\}\}|<.*>|%\(.*\)s|x+|\*+|\.+|your[_-].*|changeme|test.*|dummy.*)$", re.IGNORECASE
)


@dataclass(frozen=True)
class PiiConfig(StageConfig):
    """Which kinds to redact, and the entropy rule's thresholds."""

    emails: bool = True
    ip_addresses: bool = True
    keys: bool = True  #: the secret detectors: key blocks, tokens, assigned secrets, high entropy
    entropy_min_length: int = 20  #: quoted strings at least this long are entropy-checked
    entropy_bits: float = 4.0  #: Shannon bits per character above which a string is a key

    def __post_init__(self) -> None:
        if self.entropy_min_length < 8 or not 0.0 < self.entropy_bits <= 8.0:
            raise DataError(f"PiiConfig needs entropy_min_length >= 8 and 0 < entropy_bits <= 8: {self}")


def shannon_entropy(s: str) -> float:
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _is_sequential(s: str) -> bool:
    """'abcdef...', '0123...': alphabets and test fixtures, not keys."""
    steps = sum(1 for a, b in zip(s, s[1:], strict=False) if ord(b) - ord(a) == 1)
    return steps >= len(s) // 2


def looks_like_key(s: str, min_length: int = 20, bits: float = 4.0) -> bool:
    """High-entropy base64-ish string with mixed case and digits that is not a hash or alphabet."""
    if len(s) < min_length or re.fullmatch(r"[0-9a-fA-F]+", s) or _is_sequential(s):
        return False
    if re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", s):
        return False  # UUID
    if not (re.search(r"[a-z]", s) and re.search(r"[A-Z]", s) and re.search(r"\d", s)):
        return False  # identifiers, words, snake/kebab names
    if "_" in s and re.fullmatch(r"[A-Za-z_]\w*", s):
        return False  # a symbol name such as N10pem_ctx_st4DOLLAR_17E (costs some base64url recall)
    return shannon_entropy(s) >= bits


def _keep_ip(text: str, start: int, value: str) -> bool:
    """True if the IP-looking `value` at `start` should stay (not personal, or not an IP)."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return True
    if value in PUBLIC_DNS or not ip.is_global:
        return True
    if ip.version == 6:
        return ip not in ipaddress.ip_network("2000::/3")
    before = text[max(0, start - 12) : start].lower()
    if re.search(r"\b(?:version|ver|v)\s*[=:]?\s*[\"']?$", before):
        return True
    # "1.2.3.4", "7.1.4.34", "8.2.4.44": versions and section numbers far more often than hosts
    parts = value.split(".")
    return len(parts[0]) == 1 and len(parts[1]) == 1


def _is_password_name(name: str) -> bool:
    return bool(re.search(r"pass|pwd", name, re.IGNORECASE))


def _assigned_placeholder(m: re.Match[str]) -> str:
    return "<PASSWORD>" if _is_password_name(m.group("name")) else "<KEY>"


def _keep_assigned(m: re.Match[str]) -> bool:
    """Keep templates and placeholders; a password is redacted whatever it is, a key or token
    only when it looks like one (letters and digits, some entropy), not `token_type = "bearer"`."""
    value = m.group("value")
    if _TEMPLATED.match(value):
        return True
    if _is_password_name(m.group("name")):
        return False
    has_both = re.search(r"[A-Za-z]", value) and re.search(r"\d", value)
    return not (has_both and shannon_entropy(value) >= 3.0)


def _keep_email(value: str) -> bool:
    local, _, domain = value.rpartition("@")
    if not re.search(r"[A-Za-z0-9]", local):
        return True  # `+@pytest.mark.parametrize`: a decorator on an added line of a patch, not an address
    if re.match(r"(?:self|this|cls|np|torch)\.", domain):
        return True  # `x@self.weights`: matrix product, not an address
    return bool(EXAMPLE_DOMAINS.search(domain.lower())) or local.lower() in {"noreply", "no-reply"}


class PiiRedactor(PipelineStep):
    """Replace PII and secrets by placeholders; keeps every document, counts replacements by kind."""

    config_class = PiiConfig  # YAML settings of the step that are fields of this config

    def __init__(self, config: PiiConfig | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.config = config or PiiConfig()

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        """`(redacted text, replacements per kind)`; order matters: blocks and tokens before emails."""
        counts: Counter[str] = Counter()
        cfg = self.config

        def sub(
            pattern: re.Pattern[str],
            kind: str,
            placeholder: str | Callable[[re.Match[str]], str],
            keep: Callable[[re.Match[str]], bool] = lambda m: False,
            group: int | str = 0,
        ) -> None:
            nonlocal text

            def repl(m: re.Match[str]) -> str:
                if keep(m):
                    return m.group(0)
                counts[kind] += 1
                s, e = m.span(group)
                new = placeholder if isinstance(placeholder, str) else placeholder(m)
                return m.group(0)[: s - m.start()] + new + m.group(0)[e - m.start() :]

            text = pattern.sub(repl, text)

        if cfg.keys:
            sub(PRIVATE_KEY, "private_key", "<KEY>")
            sub(JWT, "jwt", "<KEY>")
            sub(GITHUB_TOKEN, "github_token", "<KEY>")
            sub(SLACK_TOKEN, "slack_token", "<KEY>")
            sub(AWS_KEY, "aws_key", "<KEY>")
            sub(ASSIGNED_SECRET, "assigned_secret", _assigned_placeholder, keep=_keep_assigned, group="value")
            sub(
                QUOTED,
                "high_entropy",
                "<KEY>",
                group=2,
                keep=lambda m: not looks_like_key(m.group(2), cfg.entropy_min_length, cfg.entropy_bits),
            )
        if cfg.emails:
            sub(EMAIL, "email", "<EMAIL>", keep=lambda m: _keep_email(m.group(0)))
        if cfg.ip_addresses:
            sub(IPV4, "ip_address", "<IP_ADDRESS>", keep=lambda m: _keep_ip(m.string, m.start(), m.group(0)))
            sub(IPV6, "ip_address", "<IP_ADDRESS>", keep=lambda m: _keep_ip(m.string, m.start(), m.group(0)))
        return text, counts

    def _redact_counting(self, text: str, counts: Counter[str]) -> str:
        redacted, found = self.redact(text)
        counts.update(found)
        return redacted

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        for doc in docs:
            counts: Counter[str] = Counter()
            map_plain(doc, lambda text, counts=counts: self._redact_counting(text, counts))
            if counts:
                self.stats.modified.update(counts)
                self.stats.counters["docs_modified"] += 1
                doc.metadata["pii"] = dict(counts)
            yield self.keep(doc)
