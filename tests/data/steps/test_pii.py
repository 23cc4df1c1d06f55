"""PII redaction: each kind replaced and counted; the look-alikes in code left alone."""

import pytest

from codelm.data import run_pipeline
from codelm.data.steps import PiiConfig, PiiRedactor, python_syntax_ok

from ..helpers import doc

SECRETS = [
    ('author = "jane.doe@gmail.com"', 'author = "<EMAIL>"', "email"),
    ("# Maintainer: Bob <bob.smith@corp.io>", "# Maintainer: Bob <<EMAIL>>", "email"),
    ('HOST = "93.184.216.34"', 'HOST = "<IP_ADDRESS>"', "ip_address"),
    ("connect to 93.184.216.34.", "connect to <IP_ADDRESS>.", "ip_address"),
    ('addr = "2a00:1450:4001:82b::200e"', 'addr = "<IP_ADDRESS>"', "ip_address"),
    ('aws_id = "AKIAIOSFODNN7EXAMPLE"', 'aws_id = "<KEY>"', "aws_key"),
    ('t = "ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"', 't = "<KEY>"', "github_token"),
    ('s = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"', 's = "<KEY>"', "slack_token"),
    (
        'jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"',  # noqa: E501
        'jwt = "<KEY>"',
        "jwt",
    ),
    ('API_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"', 'API_KEY = "<KEY>"', "assigned_secret"),
    ("db_password: 'hunter2hunter2'", "db_password: '<PASSWORD>'", "assigned_secret"),
    ('{"client_secret": "a1b2c3d4e5f6g7h8"}', '{"client_secret": "<KEY>"}', "assigned_secret"),
    ('blob = "Zm9vYmFyQmF6UXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo"', 'blob = "<KEY>"', "high_entropy"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc==\n-----END RSA PRIVATE KEY-----",
        "<KEY>",
        "private_key",
    ),
]


@pytest.mark.parametrize(("text", "expected", "kind"), SECRETS)
def test_each_kind_is_redacted_and_counted(text, expected, kind):
    out, counts = PiiRedactor().redact(text)
    assert out == expected
    assert counts == {kind: 1}


NOT_PII = [
    'local = "192.168.1.10"; lo = "127.0.0.1"; any = "0.0.0.0"; doc = "203.0.113.7"',
    'dns = "8.8.8.8"',
    'version = "10.2.3.4"; __version__ = "2.7.18.1"; spec = "8.2.4.44"',
    "ula = 'fd00::1'; ll = 'fe80::1'; cpp = a::b; std::vector<int> v; t = '12:30:45'",
    "mac = '00:1a:2b:3c:4d:5e'",
    "see user@example.com or admin@mail.test; y = x@self.weights; @decorator",
    'sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"',
    'alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"',
    'uid = "123e4567-e89b-12d3-a456-426614174000"',
    'name = "test_connection_pool_is_reused_2"',
    'API_KEY = "${API_KEY}"; token = os.environ["TOKEN"]; password = "<your password>"',
    'token_type = "bearer_token"; secret_name = "my-app-secret-name"',
]


@pytest.mark.parametrize("text", NOT_PII)
def test_look_alikes_are_left_alone(text):
    assert PiiRedactor().redact(text) == (text, {})


def test_kinds_can_be_switched_off():
    r = PiiRedactor(PiiConfig(emails=False, keys=False))
    assert r.redact('a = "x@corp.io"; k = "AKIAIOSFODNN7EXAMPLE"')[1] == {}


def test_step_keeps_everything_counts_modifications_and_code_still_parses(stdlib_docs):
    docs = [*(doc(d.text, d.id) for d in stdlib_docs), doc('EMAIL = "ann@corp.io"  # ann@corp.io\n', "x")]
    out, stats = run_pipeline([PiiRedactor()], docs)
    kept = list(out)
    stats.check()
    s = stats["pii_redactor"]
    assert len(kept) == len(docs) and s.n_dropped == 0
    assert s.modified["email"] >= 2 and s.counters["docs_modified"] >= 1
    assert docs[-1].metadata["pii"] == {"email": 2}
    # placeholders land in strings and comments: redacted Python still compiles
    assert all(python_syntax_ok(d.text) for d in kept)
