"""The MTPB check program: runs inside the sandbox as ``check.py`` (stdlib + numpy, no codelm).

Salesforce's ``codegen1/benchmark/mtpb_exec.py`` (``eval_problem``), reproduced:

1. if the program's last statement is not a ``print(...)`` call, its last statement's value is
   wrapped in ``print`` (``rewrite_ast_with_print``; an assignment ``x = v`` becomes
   ``x = print(v)``, a statement without a value is left alone, as there);
2. the program runs with ``__name__ == "__main__"`` and a ``print`` that records its arguments;
   an exception ends the run but is not a failure by itself (``do_exec`` swallows it);
3. the first argument of the last ``print`` call is compared with the expected output by
   ``check_equivalence``: numpy scalars and arrays and pandas Series are converted, a value of
   another type than expected is cast to the expected type (booleans compare as strings), floats
   match within 1e-6, and anything but str/int/set/list/bool/tuple/float/ndarray fails.

Where we differ: a program that does not compile exits with its ``SyntaxError`` (reported as
``syntax_error``; it fails there too); ``SystemExit`` ends the run like an exception instead of
aborting the whole evaluation; the time limit is the sandbox's. ``program.py`` holds the program,
``expected.json`` the expected output.
"""

import ast
import builtins
import json
import sys


def rewrite_ast_with_print(code: str) -> str:
    tree = ast.parse(code)
    try:
        if tree.body[-1].value.func.id.startswith("print"):
            return code
    except Exception:  # not a print call: rewrite (mtpb_exec.ends_with_print)
        pass
    last = tree.body[-1]
    last.value = ast.Call(func=ast.Name(id="print", ctx=ast.Load()), args=[last.value], keywords=[])
    ast.fix_missing_locations(last)
    return ast.unparse(tree)


def try_rewrite_ast_with_print(code: str) -> str:
    try:
        return rewrite_ast_with_print(code)
    except Exception:  # unparsable, empty, or a last statement without a value: run as it is
        return code


def check_equivalence(o1, o2) -> bool:
    import numpy as np

    if str(type(o1)) == "<class 'pandas.core.series.Series'>":
        o1 = o1.to_numpy()
        o2 = np.array(o2)
    elif type(o1) is list:
        if len(o1) > 0 and type(o1[0]) is tuple:
            o1 = [list(t) for t in o1]
    elif type(o1) in [np.uint8, np.int16, np.int32, np.int64]:
        o1 = int(o1)
    elif type(o1) in [np.float16, np.float32, np.float64]:
        o1 = float(o1)
    elif type(o1) in [np.bool_]:
        o1 = bool(o1)
    elif type(o1) is np.ndarray:
        o1 = o1.tolist()
    if type(o1) is not type(o2):
        if type(o2) is bool:  # bool("False") is True: compare in string space
            o1, o2 = str(o1), str(o2)
        else:
            o1 = type(o2)(o1)
    kind = type(o1)
    if kind in [str, int, set, list, bool, tuple]:
        return o1 == o2
    if kind is float:
        return abs(o1 - o2) < 1e-6
    if kind is np.ndarray:
        return bool(np.allclose(o1, o2))
    raise ValueError(f"Unsupported type {kind}")


def main() -> None:
    with open("program.py", encoding="utf-8") as f:
        code = f.read()
    with open("expected.json", encoding="utf-8") as f:
        expected = json.load(f)
    compile(code, "program.py", "exec")  # a SyntaxError ends here, with its own message
    print_stack: list = []

    def recording_print(*args, **kwargs):
        print_stack.append({"args": args, "kwargs": kwargs})
        return builtins.print(*args, **kwargs)

    namespace = {"print_stack": print_stack, "__name__": "__main__", "print": recording_print}
    try:
        exec(compile(try_rewrite_ast_with_print(code), "program.py", "exec"), namespace)
    except (Exception, SystemExit) as exc:  # mtpb_exec.do_exec: the printed value still counts
        builtins.print(f"the program raised {type(exc).__name__}: {exc}", file=sys.stderr)
    if not print_stack or not print_stack[-1]["args"]:
        raise AssertionError("the program printed nothing")
    output = print_stack[-1]["args"][0]
    if not check_equivalence(output, expected):
        raise AssertionError(f"printed {str(output)[:200]!r}, expected {str(expected)[:200]!r}")


if __name__ == "__main__":
    main()
