"""The SAFIM stdin/stdout check: runs inside the sandbox (stdlib only, no codelm).

``python safim_check.py CMD...`` runs ``CMD`` once per unit test of ``tests.json`` (a list of
``{"input": str, "output": [str, ...]}``), feeding the input on stdin, and stops at the first test
that fails, as ExecEval does (``stop_on_first_fail``). A test passes when the command exits 0 and
its stdout matches any accepted output under ExecEval's ``validate_outputs``: equal line by line
after stripping, or else token by token where numbers may differ by at most 1e-12 (ExecEval uses
129-bit MPFR; ``decimal`` with 60 digits here) and yes/no/true/false ignore case.
With ``--python FILE`` the file is compiled first, so a SyntaxError is reported as such.
"""

import decimal
import json
import subprocess
import sys

PRECISION = decimal.Decimal("1e-12")
WORDS = {"yes", "no", "true", "false"}
decimal.getcontext().prec = 60


def _number(token: str):
    try:
        value = decimal.Decimal(token)
    except decimal.InvalidOperation:
        return None
    return None if "_" in token else value  # MPFR rejects Python's digit separators


def validate(expected: str, actual: str) -> bool:
    """ExecEval's ``validate_outputs``."""
    lines1, lines2 = expected.strip().split("\n"), actual.strip().split("\n")
    if len(lines1) == len(lines2):
        if all(a.strip() == b.strip() for a, b in zip(lines1, lines2, strict=True)):
            return True
    tokens1, tokens2 = expected.strip().split(), actual.strip().split()
    if len(tokens1) != len(tokens2):
        return False
    for tok1, tok2 in zip(tokens1, tokens2, strict=True):
        num1, num2 = _number(tok1), _number(tok2)
        if num1 is not None and num2 is not None:
            if num1.is_nan() or num2.is_nan():
                continue  # MPFR: NaN > precision is false, so NaN matches
            if abs(num1 - num2) > PRECISION:
                return False
            continue
        tok1 = tok1.lower() if tok1.lower() in WORDS else tok1
        tok2 = tok2.lower() if tok2.lower() in WORDS else tok2
        if tok1 != tok2:
            return False
    return True


def main(argv: list) -> int:
    if argv[:1] == ["--python"]:
        with open(argv[1], encoding="utf-8") as f:
            compile(f.read(), argv[1], "exec")  # a SyntaxError ends the check here
        argv = argv[2:]
    with open("tests.json", encoding="utf-8") as f:
        tests = json.load(f)
    for number, test in enumerate(tests):
        done = subprocess.run(argv, input=test["input"].encode(), capture_output=True)
        sys.stderr.write(done.stderr.decode(errors="replace")[-2000:])
        if done.returncode != 0:
            print(f"test #{number}: exit status {done.returncode}", file=sys.stderr)
            return 1
        out = done.stdout.decode(errors="ignore").strip()
        if not any(validate(expected, out) for expected in test["output"]):
            print(f"test #{number}: wrong answer: {out[:200]!r}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
