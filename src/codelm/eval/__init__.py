"""Evaluation pillar: ``codelm eval``, its benchmarks, the code-execution sandbox, pass@k.

* ``cli``        - the flags of ``codelm eval`` and the entry point (light to import)
* ``runner``     - plan tasks, generate, calibrate timeouts, execute, with resume
* ``generation`` - the one batch interface to models (``GenRequest`` in, texts out)
* ``backends/``  - in-process engine, OpenAI-compatible endpoint, samples file
* ``prompts``    - stop strings, chat prompts, code from chat replies
* ``tasks/``     - one module per benchmark, and the registry of task names
* ``store``      - the run directory's journals (what ``--resume`` continues from)
* ``scoring``, ``report`` - metrics per benchmark; summary.json, samples.jsonl, report.md
* ``sandbox``    - run one untrusted program in an isolated, resource-limited process
* ``execution``  - score many programs fast with a pool of pre-started sandbox workers
* ``passk``      - the unbiased pass@k estimator and its per-benchmark aggregate
* ``jail/``      - the stdlib-only code that runs inside sandbox workers

Nothing here executes model-generated code unless the caller passes
``allow_code_execution=True`` (the CLI's ``--allow-code-execution``). See docs/eval.md.
"""
