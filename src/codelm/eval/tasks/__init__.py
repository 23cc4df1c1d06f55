"""One module per benchmark: load its problems and turn (problem, completion) into a Program.

Benchmark-specific choices (how a check program is assembled, which harness semantics to copy)
live here and only here; the sandbox and the execution pool know nothing about benchmarks.
"""
