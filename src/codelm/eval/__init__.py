"""Evaluation pillar: benchmark tasks, the code-execution sandbox, the execution pool, pass@k.

* ``sandbox``   - run one untrusted program in an isolated, resource-limited process
* ``execution`` - score many programs fast with a pool of pre-started sandbox workers
* ``passk``     - the unbiased pass@k estimator and its per-benchmark aggregate
* ``tasks/``    - one module per benchmark (loading problems, building check programs)
* ``jail/``     - the stdlib-only code that runs inside sandbox workers

Nothing here executes model-generated code unless the caller passes
``allow_code_execution=True`` (the CLI's ``--allow-code-execution``).
"""
