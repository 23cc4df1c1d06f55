"""The oracle: rating parsing, an OpenAI-compatible endpoint, the in-process engine on a tiny model."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from codelm.data import DataError, Document
from codelm.data.quality import EngineChat, OpenAIChat, OracleStats, label_documents, parse_rating
from codelm.data.quality.oracle import build_prompt


@pytest.mark.parametrize(
    "answer, score",
    [
        ("Well structured and documented.\nRating: [[8]]", 8.0),
        ("Auto-generated protobuf file. Rating: [[0]]", 0.0),
        ("Rating: [[7.5]]", 7.5),
        ("First I thought [[3]], but on reflection Rating: [[6]]", 6.0),  # the last verdict counts
        ("Rating: 7/10", 7.0),
        ("**Score:** 9", 9.0),
        ("I would give it 4 out of 10.", 4.0),
        ("Rating: [[11]]", None),  # out of range: not guessed
        ("This code is fine.", None),
        ("", None),
    ],
)
def test_parse_rating(answer, score):
    assert parse_rating(answer) == score


def test_prompt_names_the_criteria_and_cuts_long_files():
    doc = Document("x = 1\n" * 5000, "r/a.py", path="a.py", language="python")
    prompt = build_prompt(doc, max_file_chars=100)
    for word in (
        "Readability",
        "Modularity",
        "Clarity",
        "Reusability",
        "Zero-score policy",
        "Rating: [[X]]",
        "`a.py`",
        "(truncated)",
    ):
        assert word in prompt
    assert len(prompt) < 2500


class FakeOracle(BaseHTTPRequestHandler):
    """Rates by the number of `def`s; answers junk for files that mention `junk`."""

    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOracle.seen.append((self.path, self.headers.get("Authorization"), body))
        content = body["messages"][0]["content"]
        text = (
            "no idea" if "junk" in content else f"Clear code.\nRating: [[{min(content.count('def '), 10)}]]"
        )
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def oracle_url():
    server = HTTPServer(("127.0.0.1", 0), FakeOracle)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_openai_endpoint_labels_and_counts_unparseable(oracle_url, monkeypatch):
    monkeypatch.setenv("ORACLE_KEY", "sk-test")
    chat = OpenAIChat(oracle_url + "/v1", "judge", api_key_env="ORACLE_KEY")
    docs = [
        Document("def a(): pass\ndef b(): pass\n", "1", language="python"),
        Document("junk = 1\n", "2", language="python"),
    ]
    stats = OracleStats()
    labels = label_documents(docs, chat, stats=stats)
    assert [lb.score for lb in labels] == [2.0, None]
    assert (stats.requested, stats.parsed, stats.unparseable) == (2, 1, 1)
    path, auth, body = FakeOracle.seen[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert body["model"] == "judge" and body["temperature"] == 0


def test_openai_endpoint_errors_are_clear():
    with pytest.raises(DataError, match="unreachable"):
        OpenAIChat("http://127.0.0.1:9", "m", retries=0).chat([{"role": "user", "content": "x"}])


def test_engine_oracle_on_a_tiny_model_counts_junk(tiny_engine, stdlib_docs):
    # random weights answer junk: the plumbing works and every failure is counted, none guessed
    chat = EngineChat(tiny_engine("llama"), max_new_tokens=8)
    stats = OracleStats()
    labels = label_documents(stdlib_docs[:2], chat, stats=stats)  # long files: cut to the context
    assert len(labels) == 2 and stats.requested == 2
    assert stats.parsed + stats.unparseable == 2
    assert all(lb.score is None or 0 <= lb.score <= 10 for lb in labels)
    assert stats.unparseable == sum(lb.score is None for lb in labels)
