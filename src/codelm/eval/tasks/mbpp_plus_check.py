"""The MBPP+ check program: runs inside the sandbox as ``check.py`` (stdlib only, no codelm).

EvalPlus's differential test of one solution (evalplus 0.3.1, ``evalplus/eval/__init__.py``
``unsafe_execute`` with its MBPP special oracles, ``evalplus/evaluate.py`` ``get_groundtruth``):

1. the expected outputs come from the reference (the task's prompt + canonical solution) run on a
   deep copy of every input, before the candidate's code is even compiled, so the candidate
   cannot influence them; ``not_none`` tasks expect only "returned something";
2. the candidate (``solution.py``) is executed in a fresh namespace (so ``__main__`` blocks do not
   run) and its ``entry_point`` is called on each input in order (the input itself, as EvalPlus);
3. an output passes if it equals the expected one, or, with a tolerance (the task's ``atol``, or
   1e-6 once an expected output is a float or a list of floats - sticky, as in EvalPlus), if it
   has the same type and length and is element-wise within ``atol + 1e-7 * |expected|``
   (``numpy.allclose``; reimplemented so no sample pays numpy's import).

EvalPlus checks the base inputs and the plus inputs in two separate runs, so the sticky tolerance
starts afresh with the plus inputs: ``restart`` (the index of the first plus input) does that here.
Where the case has ``time_limits`` (HumanEval+: ``max(1 s, 4 x`` the reference's time on that
input``)``, EvalPlus's ``untrusted_check``), each call of the candidate gets its own limit
(``SIGALRM``, as EvalPlus's ``time_limit``); going over it fails the sample, as it does there.

``case.pkl`` holds the entry point, reference source, inputs, atol, oracle name and a mode:

* ``truth``: run the reference and write its outputs (large ones as digests) and the time each
  call took to ``outputs.json`` (``{"outputs": [encoded...], "times": [seconds...]}``; where the
  outputs cannot serve, ``"outputs": null`` and ``"why"``, see ``write_truth``);
* ``outputs`` (the runner knows the expected outputs): run the candidate on every input and write
  its outputs to ``outputs.json`` (``{"outputs": [encoded...], "error": why it stopped early}``: an
  exception or a time limit on input k ends the run after k outputs; at the ``digests`` inputs,
  the digest of the output); the case has no reference in this mode; the parent compares them
  (``mbpp_plus.verify``), so nothing in this process, which runs the candidate, knows or judges the
  expected outputs, and the outputs before a failure still settle the base inputs' verdict;
* otherwise (expected outputs too large to pass around, e.g. Mbpp/255): compute the expected
  outputs here before the candidate runs and compare in this process; the first failing input
  raises, so the program exits non-zero with the reason on stderr. A ``limit_rule``
  ``(floor, factor)`` derives the per-input limits from the times of that reference run.

``encode`` writes plain values only, in a tagged JSON the parent decodes without running
anything: an object of another type, or a subclass that overrides ``__eq__`` (an object that
equals everything), is refused here, so it cannot pass a comparison made elsewhere.

Large outputs (HumanEval/15 and /130 write ~150 MB, /139 integers of 10^5 digits) are compared by
digest instead: the truth run writes ``["#", sha256, floats]`` for an output whose canonical bytes
(``canonical``: ``marshal`` format 2, exact builtin types only, no references or interning flags)
pass ``DIGEST_BYTES``, where that is safe (``truth_digest``: no NaN, no bytes, no sets, whose
order follows the per-process string hash seed), and the case of a
candidate lists those inputs (``digests``) so its program writes the SHA-256 of its own output's
canonical bytes there. Equal digests mean byte-identical canonical forms, hence equal values of
the same builtin types, which EvalPlus's ``out == exp`` passes. The parent holds the expected
digest; the candidate's case holds neither it nor the reference, so a matching digest can only come
from the right output. A digest that differs proves nothing (``1 == 1.0``, equal sets iterated in
another order, floats within the tolerance), so the parent then runs the comparison in the
sandbox instead (the mode without expected outputs below) for the same verdict as EvalPlus.
"""

import copy
import hashlib
import json
import marshal
import math
import pickle
import signal
import time

RTOL = 1e-07  # numpy.allclose's default, which EvalPlus passes explicitly


def is_floats(x: object) -> bool:
    """A float, or a non-empty list/tuple of floats (evalplus ``is_floats``)."""
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return type(x).__name__ == "ndarray" and str(getattr(x, "dtype", "")) in ("float64", "float32")


def _number(x: object) -> bool:
    return isinstance(x, (int, float, complex)) or type(x).__module__ == "numpy"


def allclose(actual: object, expected: object, atol: float, rtol: float = RTOL) -> bool:
    """``numpy.allclose`` for numbers and (nested) sequences of numbers; NaN never matches."""
    if isinstance(actual, (list, tuple)) or isinstance(expected, (list, tuple)):
        if not (isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple))):
            return False
        if len(actual) != len(expected):
            return False
        return all(allclose(a, e, atol, rtol) for a, e in zip(actual, expected, strict=True))
    if not (_number(actual) and _number(expected)):
        raise TypeError(f"cannot compare {type(actual).__name__} and {type(expected).__name__} numerically")
    if _isnan(actual) or _isnan(expected):
        return False
    if _isinf(actual) or _isinf(expected):
        return actual == expected
    return abs(actual - expected) <= atol + rtol * abs(expected)


def _isnan(x: object) -> bool:
    return isinstance(x, complex) and (math.isnan(x.real) or math.isnan(x.imag)) or (x != x)


def _isinf(x: object) -> bool:
    if isinstance(x, complex):
        return math.isinf(x.real) or math.isinf(x.imag)
    return isinstance(x, float) and math.isinf(x)


def surface_area(base_edge, height):  # evalplus special oracle for Mbpp/581
    slant_height = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant_height) / 2)


def digit_distance(num1, num2):  # evalplus special oracle for Mbpp/558
    a, b = str(num1), str(num2)
    width = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(width), b.zfill(width), strict=True))


def poly(xs: list, x: float) -> float:  # evalplus special oracle for HumanEval/32 (find_zero)
    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))


def matches(out, exp, inp, atol: float, oracle: str | None) -> tuple[bool, float]:
    """Whether ``out`` passes for this input, and the tolerance for the following inputs."""
    if oracle == "find_zero":  # any root within atol, not the reference's root
        return abs(poly(*inp, out)) <= atol, atol
    exact = out == exp
    if oracle == "are_equivalent":  # Mbpp/164: EvalPlus accepts any output
        exact = exact or True
    elif oracle == "sum_div":  # Mbpp/295: 0 is accepted too
        exact = exact or out == 0
    elif oracle == "surface_area":
        exact = exact or abs(out - surface_area(*inp)) <= atol
    elif oracle == "digit_distance":
        exact = exact or out == digit_distance(*inp)
    elif oracle == "set_eq":
        exact = set(out) == set(exp)
    elif oracle == "not_none":
        exact = out == exp if isinstance(out, bool) else exp == (out is not None)
    if atol == 0 and is_floats(exp):
        atol = 1e-6
    if not exact and atol != 0:
        same_shape = type(out) is type(exp) and (not isinstance(exp, (list, tuple)) or len(out) == len(exp))
        return same_shape and allclose(out, exp, atol), atol
    return bool(exact), atol


def load_function(source: str, filename: str, name: str):
    namespace: dict = {}
    exec(compile(source, filename, "exec"), namespace)
    if name not in namespace:
        raise NameError(f"{filename} defines no {name!r}")
    return namespace[name]


def expected_outputs(case: dict, times: list | None = None) -> list:
    """The reference's outputs on deep copies of the inputs (``not_none``: whether it returned);
    the seconds each call took are appended to ``times`` (EvalPlus's ``trusted_exec``)."""
    reference = load_function(case["reference"], "reference.py", case["entry_point"])
    expected = []
    for inp in case["inputs"]:
        inp = copy.deepcopy(inp)
        start = time.perf_counter()
        expected.append(reference(*inp))
        if times is not None:
            times.append(time.perf_counter() - start)
    if case["oracle"] == "not_none":
        expected = [e is not None for e in expected]
    return expected


class InputTimeout(Exception):
    pass


def _expired(signum, frame):
    raise InputTimeout("over its time limit")


def candidate_outputs(candidate, case: dict):
    """The candidate's output on each input, in order, called on the input itself as EvalPlus
    does (each is used once); with ``time_limits``, each call under its own (``SIGALRM``, one
    handler for the run, the timer set per call: a few microseconds)."""
    limits = case.get("time_limits")
    if limits:
        signal.signal(signal.SIGALRM, _expired)
    for index, inp in enumerate(case["inputs"]):
        if not limits:
            yield index, inp, candidate(*inp)
            continue
        signal.setitimer(signal.ITIMER_REAL, limits[index])
        try:
            out = candidate(*inp)
        except InputTimeout:
            raise InputTimeout(f"input #{index}: over its time limit of {limits[index]:.2f}s") from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        yield index, inp, out


_SCALARS = {type(None): "n", bool: "b", int: "i", float: "f", complex: "c", str: "s", bytes: "y"}
_CONTAINERS = {list: "l", tuple: "t", set: "S", frozenset: "F", dict: "d"}


def _base(value: object) -> type:
    """The builtin type ``value`` compares as; TypeError when equality could be anything else.

    Scalars must be exactly builtin; containers may be subclasses (namedtuple) that keep the
    builtin equality and hash."""
    kind = type(value)
    if kind in _SCALARS or kind in _CONTAINERS:
        return kind
    for base in _CONTAINERS:
        if isinstance(value, base):
            if all(getattr(kind, m) is getattr(base, m) for m in ("__eq__", "__ne__", "__hash__")):
                return base
            raise TypeError(f"{kind.__name__} overrides equality")
    raise TypeError(f"{kind.__name__} is not a plain value")


# JSON holds these exactly (floats as repr, NaN and infinities included): a flat container of one of
# them goes out as one JSON array, checked and rebuilt in C on both sides (a list of a million floats
# in milliseconds, where tagging each item took seconds). Ints only while their decimal form is short.
_FLAT = {str: "s", float: "f", bool: "b", int: "i"}
_FLAT_INT = 1 << 63


def _flat(items: list) -> str | None:
    """The one-letter kind of a non-empty sequence of exactly one JSON-exact type, else None."""
    kinds = set(map(type, items))
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    if kind is int and not (-_FLAT_INT < min(items) and max(items) < _FLAT_INT):
        return None
    return _FLAT.get(kind)


def encode(value: object, depth: int = 0) -> object:
    """A JSON-ready [tag, payload] for a plain value (recursively); TypeError otherwise.
    Containers are read through the builtin methods, never the subclass's own. A flat container
    of one JSON-exact type is ``[tag + kind, items]`` (``"lf"``: a list of floats)."""
    if depth > 100:
        raise TypeError("nested more than 100 levels")
    base = _base(value)
    if base in (list, tuple, set, frozenset):
        items = value if type(value) is list else list(base.__iter__(value))
        kind = _flat(items) if items else None
        if kind:
            return [_CONTAINERS[base] + kind, items]
    if base is int:  # as hex text: JSON readers cap an int's digits, and hex converts in linear
        return ["i", format(value, "x")]  # time with no digit limit (HumanEval/139: 10^5+ digits)
    if base is float:
        return ["f", repr(value)]
    if base is complex:
        return ["c", repr(value.real), repr(value.imag)]
    if base is bytes:
        return ["y", value.hex()]
    if base in _SCALARS:  # None, bool, str
        return [_SCALARS[base], value]
    if base is dict:
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]]
    return [_CONTAINERS[base], [encode(item, depth + 1) for item in base.__iter__(value)]]


DIGEST_BYTES = 16 * 1024  # outputs whose canonical bytes are larger are compared by digest
_SCALARS_NOT_BYTES = {type(None), bool, int, float, complex, str}


def canonical(value: object) -> bytes | None:
    """The canonical bytes of a plain value (``marshal`` format 2: written in C, exact builtin
    types only, no references or interning flags, so equal values built alike give equal bytes);
    None for anything else (a subclass, an object of another type, nesting too deep)."""
    try:
        return marshal.dumps(value, 2)
    except (ValueError, RecursionError):
        return None


def digest(value: object) -> str | None:
    """SHA-256 of ``canonical(value)``; None where there is none."""
    data = canonical(value)
    return hashlib.sha256(data).hexdigest() if data is not None else None


def _scalar_types(value: object, seen: set) -> bool:
    """Add the scalar types in ``value`` to ``seen``; False unless it holds only scalars, lists,
    tuples and dicts: no bytes (marshal writes any buffer, e.g. an array, as bytes) and no sets
    (iterated in an order that can differ between two processes)."""
    kind = type(value)
    if kind in _SCALARS_NOT_BYTES:
        seen.add(kind)
        return True
    if kind is dict:
        return _scalar_types(list(value), seen) and _scalar_types(list(value.values()), seen)
    if kind in (list, tuple):
        kinds = set(map(type, value))  # in C: a flat list costs no Python call per item
        if kinds <= _SCALARS_NOT_BYTES:
            seen |= kinds
            return True
        return all(_scalar_types(item, seen) for item in value)
    return False


def truth_digest(out: object, oracle: str | None) -> list | None:
    """``["#", sha256, floats]`` for a large expected output that a digest can stand for
    (``_scalar_types``; with floats, equal to its canonical bytes read back: no NaN, which equals
    nothing); ``floats`` is ``is_floats(out)`` (it makes the tolerance 1e-6 for the inputs after it)."""
    if oracle is not None:  # the oracles compare less (or other things) than the whole output
        return None
    data = canonical(out)
    seen: set = set()
    if data is None or len(data) <= DIGEST_BYTES or not _scalar_types(out, seen):
        return None
    if (float in seen or complex in seen) and marshal.loads(data) != out:
        return None
    return ["#", hashlib.sha256(data).hexdigest(), int(is_floats(out))]


def reported(out: object, oracle: str | None) -> object:
    """What of an output the comparison looks at, for oracles that look at less than all of it."""
    if oracle == "are_equivalent":  # any output is accepted
        return None
    if oracle == "not_none" and type(out) is not bool:  # only whether something was returned
        return out is not None
    if oracle == "set_eq" and not isinstance(out, (list, tuple, set, frozenset)):
        return list(out)  # compared as a set: an iterator's items (TypeError if not iterable)
    return out


def _encoded(index: int, out: object) -> object:
    try:
        return encode(out)
    except TypeError as exc:
        raise TypeError(f"output #{index} cannot be compared outside the sandbox: {exc}") from None


def _failure(index: int, exc: Exception) -> str:
    """One line on why input ``index`` produced no output (the candidate's exception, or its limit)."""
    if isinstance(exc, InputTimeout):
        return str(exc)
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose str() itself fails: its type says enough
        text = type(exc).__name__
    return f"input #{index}: {text}"[:500]


def write_outputs(outputs: list, times: list | None = None, error: str | None = None) -> None:
    """``outputs.json``: the encoded outputs, with the reference's times (truth) or, for a
    candidate, why it stopped early (``error``: the outputs before it are still judged)."""
    run = {"outputs": outputs, "times": times} if times is not None else {"outputs": outputs, "error": error}
    with open("outputs.json", "w", encoding="utf-8") as f:
        json.dump(run, f, separators=(",", ":"))


def write_truth(case: dict) -> None:
    """``outputs.json`` of a truth run. Where the outputs cannot serve (one is not a plain value,
    they pass ``max_bytes``, or their digests cost more than running the reference) it keeps
    timing the reference and writes ``{"outputs": null, "times": [...], "why": ...}``: the check
    programs then compute the expected outputs in the sandbox, under the same per-input limits."""
    reference = load_function(case["reference"], "reference.py", case["entry_point"])
    parts, times, size = [], [], 0
    why = None  # set once the outputs cannot serve: only the times are still recorded
    digest_seconds = digested_seconds = 0.0  # digesting outputs, and computing them
    for index, inp in enumerate(case["inputs"]):
        inp = copy.deepcopy(inp)
        start = time.perf_counter()
        out = reference(*inp)
        times.append(time.perf_counter() - start)
        if why is not None:
            continue
        out = out if case["oracle"] != "not_none" else out is not None
        start = time.perf_counter()
        encoded = truth_digest(out, case["oracle"])
        if encoded is not None:  # e.g. millions of small tuples (Mbpp/255): comparing in the
            digest_seconds += time.perf_counter() - start  # sandbox costs less than their digests
            digested_seconds += times[-1]
            if digest_seconds > 1.0 + 2.0 * digested_seconds:
                why = f"digests take {digest_seconds:.1f}s, the reference {digested_seconds:.1f}s"
                continue
        try:
            part = json.dumps(encoded or _encoded(index, out), separators=(",", ":"))
        except TypeError as exc:  # e.g. a Counter (it overrides equality)
            why = str(exc)
            continue
        size += len(part)
        if size > case.get("max_bytes", size):
            why = f"outputs over {case['max_bytes']} bytes"
            continue
        parts.append(part)
    with open("outputs.json", "w", encoding="utf-8") as f:
        if why is not None:
            json.dump({"outputs": None, "times": times, "why": why}, f)
        else:
            f.write('{"outputs":[' + ",".join(parts) + '],"times":' + json.dumps(times) + "}")


def main() -> None:
    with open("case.pkl", "rb") as f:
        case = pickle.load(f)
    if case.get("mode") == "truth":
        write_truth(case)
        return
    with open("solution.py", encoding="utf-8") as f:
        candidate = load_function(f.read(), "solution.py", case["entry_point"])
    if case.get("mode") == "outputs":  # the first failing input ends the run (EvalPlus's verdict is
        encoded: list = []  # the same), but the outputs before it are still judged, by the parent
        error = None
        digests = frozenset(case.get("digests", ()))
        try:
            for index, _, out in candidate_outputs(candidate, case):
                if index in digests:  # its expected output is a digest: so is what goes out
                    encoded.append(["#", digest(out)])
                else:
                    encoded.append(_encoded(index, reported(out, case["oracle"])))
        except Exception as exc:
            error = _failure(len(encoded), exc)
        write_outputs(encoded, error=error)
        return
    times: list = []
    expected = expected_outputs(case, times)
    if case.get("limit_rule"):  # per-input limits from the reference's times measured just now
        low, factor = case["limit_rule"]
        case["time_limits"] = [max(low, factor * t) for t in times]
    atol = case["atol"]
    for index, inp, out in candidate_outputs(candidate, case):
        if index == case.get("restart"):  # the plus inputs: EvalPlus's second run
            atol = case["atol"]
        ok, atol = matches(out, expected[index], inp, atol, case["oracle"])
        if not ok:
            raise AssertionError(f"input #{index}: got {_short(out)}, expected {_short(expected[index])}")


def _short(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's decimal conversion limit
        return f"<an int of {value.bit_length()} bits>" if isinstance(value, int) else "<unprintable>"
    return text if len(text) <= 200 else text[:200] + "..."


if __name__ == "__main__":
    main()
