"""FIM and chat strings, byte-exact against the model cards (shared/research/models.md)."""

import pytest

from codelm.errors import RequestError, UnsupportedFeatureError
from codelm.models import get_family
from codelm.models.formats import cut_at_first, render_chat, render_fim, render_repo_context

PREFIX = "def fib(n):"
SUFFIX = "    else:\n        return fib(n - 2) + fib(n - 1)"


def test_codegemma_fim_is_psm_without_extra_whitespace():
    assert render_fim(get_family("codegemma"), "a = ", "\nb = 2") == (
        "<|fim_prefix|>a = <|fim_suffix|>\nb = 2<|fim_middle|>"
    )


def test_stablecode_fim_matches_card_example():
    # stable-code-3b card, "Run with Fill in Middle"
    assert render_fim(get_family("stablecode"), PREFIX, SUFFIX) == (
        "<fim_prefix>def fib(n):<fim_suffix>    else:\n        return fib(n - 2) + fib(n - 1)<fim_middle>"
    )


def test_seedcoder_fim_is_spm_suffix_first():
    # Seed-Coder README: '<[fim-suffix]>' + suffix + '<[fim-prefix]>' + prefix + '<[fim-middle]>'
    assert render_fim(get_family("seedcoder"), PREFIX, SUFFIX) == (
        "<[fim-suffix]>" + SUFFIX + "<[fim-prefix]>" + PREFIX + "<[fim-middle]>"
    )


def test_llama_fim_is_the_fim_papers_spm():
    # Bavarian et al. 2022, section 3: [PRE][SUF] suffix [MID] prefix, the middle continues the prefix
    assert render_fim(get_family("llama"), PREFIX, SUFFIX) == (
        "<fim_prefix><fim_suffix>" + SUFFIX + "<fim_middle>" + PREFIX
    )


def test_fim_empty_parts_allowed():
    assert render_fim(get_family("codegemma"), "", "") == "<|fim_prefix|><|fim_suffix|><|fim_middle|>"


def test_codegen1_refuses_fim():
    with pytest.raises(
        UnsupportedFeatureError, match="model family codegen1 does not support fill-in-the-middle"
    ):
        render_fim(get_family("codegen1"), "a", "b")


CONVO = [
    {"role": "user", "content": "Write a quick sort."},
    {"role": "assistant", "content": "ok"},
    {"role": "user", "content": "more"},
]


def test_codegemma_chat_gemma_turns():
    assert render_chat(get_family("codegemma"), CONVO) == (
        "<bos><start_of_turn>user\nWrite a quick sort.<end_of_turn>\n<start_of_turn>model\nok<end_of_turn>\n"
        "<start_of_turn>user\nmore<end_of_turn>\n<start_of_turn>model\n"
    )


def test_codegemma_chat_rejects_system_and_non_alternating():
    fam = get_family("codegemma")
    with pytest.raises(RequestError, match="System role not supported"):
        render_chat(fam, [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}])
    with pytest.raises(RequestError, match="alternate"):
        render_chat(fam, [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}])


def test_seedcoder_chat_default_system_prompt():
    out = render_chat(get_family("seedcoder"), [{"role": "user", "content": "Write a quick sort."}])
    assert out.startswith(
        "<[begin▁of▁sentence]>system\nYou are an AI programming assistant, utilizing the Seed-Coder model"
    )
    assert out.endswith(
        "refuse to answer.\n\n<[end▁of▁sentence]><[begin▁of▁sentence]>user\nWrite a quick sort."
        "<[end▁of▁sentence]><[begin▁of▁sentence]>assistant\n"
    )


def test_seedcoder_chat_user_system_is_a_plain_trimmed_turn():
    out = render_chat(
        get_family("seedcoder"),
        [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "hi"}],
    )
    assert out == (
        "<[begin▁of▁sentence]>system\nBe brief.<[end▁of▁sentence]>"
        "<[begin▁of▁sentence]>user\nhi<[end▁of▁sentence]><[begin▁of▁sentence]>assistant\n"
    )


def test_stablecode_chat_is_chatml():
    out = render_chat(
        get_family("stablecode"),
        [
            {"role": "system", "content": "You are a helpful and polite assistant"},
            {"role": "user", "content": "hi"},
        ],
    )
    assert out == (
        "<|im_start|>system\nYou are a helpful and polite assistant<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_codegen1_has_no_chat():
    with pytest.raises(UnsupportedFeatureError, match="no chat format"):
        render_chat(get_family("codegen1"), CONVO)


@pytest.mark.parametrize(
    "bad", [[], [{"role": "robot", "content": "x"}], [{"content": "x"}], [{"role": "user", "content": 3}]]
)
def test_bad_messages_are_request_errors(bad):
    with pytest.raises(RequestError):
        render_chat(get_family("llama"), bad)


def test_repo_context_uses_file_separator_or_path_comments():
    files = [("pkg/a.py", "x = 1\n"), ("pkg/b.py", "y = 2")]
    assert render_repo_context(get_family("codegemma"), files) == (
        "<|file_separator|>pkg/a.py\nx = 1\n<|file_separator|>pkg/b.py\ny = 2\n"
    )
    assert render_repo_context(get_family("seedcoder"), files) == "# pkg/a.py\nx = 1\n# pkg/b.py\ny = 2\n"


def test_cut_at_first_picks_earliest_stop():
    assert cut_at_first("abc<EOT>def\n\nghi", ["\n\n", "<EOT>"]) == ("abc", True)
    assert cut_at_first("abc", ["x"]) == ("abc", False)
