from transformers import AutoTokenizer

from codelm.engine.text import IncrementalDecoder, StopMatcher


def feed_all(matcher, pieces):
    out, hit = "", False
    for p in pieces:
        emitted, hit = matcher.feed(p)
        out += emitted
        if hit:
            break
    if not hit:
        out += matcher.flush()
    return out, hit


def test_stop_string_split_across_pieces_is_never_emitted():
    out, hit = feed_all(StopMatcher(["<|fim_middle|>"]), ["x = 1<|fim", "_mid", "dle|>junk"])
    assert (out, hit) == ("x = 1", True)


def test_partial_prefix_that_turns_out_not_a_stop_is_released():
    m = StopMatcher(["\n\n"])
    assert m.feed("a\n") == ("a", False)
    assert m.feed("b") == ("\nb", False)


def test_overlapping_prefixes():
    out, hit = feed_all(StopMatcher(["aab"]), ["a", "a", "a", "b", "c"])
    assert (out, hit) == ("a", True)


def test_no_stop_flushes_everything():
    assert feed_all(StopMatcher(["STOP"]), ["ST", "OR", "Y"]) == ("STORY", False)


def test_incremental_decoder_matches_full_decode(tiny_checkpoint):
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint("llama"))
    text = "def f(x):\n    return 'héllo wörld ✓'  # 日本語\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    dec = IncrementalDecoder(tok, context_ids=tok("prompt", add_special_tokens=False)["input_ids"])
    assert "".join(dec.push(i) for i in ids) == text
