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


def test_codegen_truncation_while_streaming_matches_post_hoc():
    from codelm.engine.text import CodegenTruncatingMatcher
    from codelm.models.codegen_truncate import codegen_truncate

    patterns = [r"\n\n^#", "^'''", "\n\n\n"]
    text = "    x = 1\n    return x\n\n\n# test\nprint(f())\n"
    m = CodegenTruncatingMatcher([], patterns)
    out, hit = "", False
    for ch in text:  # one character at a time: the worst case for hold-back
        piece, hit = m.feed(ch)
        out += piece
        if hit:
            break
    assert hit and out == codegen_truncate(text, patterns) == "    x = 1\n    return x"


def test_codegen_truncation_streaming_holds_only_the_last_line():
    from codelm.engine.text import CodegenTruncatingMatcher

    m = CodegenTruncatingMatcher([], ["^'''"])
    assert m.feed("a = 1\nb = ") == ("a = 1", False)
    assert m.feed("2\n") == ("\nb = 2", False)
    assert m.feed("'''doc") == ("\n", True)  # a line starting with ''' ends the sample before it
    m2 = CodegenTruncatingMatcher([], ["ZZZ"])
    for piece in ["print(1)\n", "x\n", "print(2)\n"]:
        m2.feed(piece)
    assert m2.flush() == "" and m2.text.startswith("print(1)\nx\n")
