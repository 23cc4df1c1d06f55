"""Generation backends behind ``codelm.eval.generation.Backend``: interchangeable model sources.

* ``engine``   - the in-process codelm engine on any local checkpoint (batched)
* ``openai``   - any OpenAI-compatible server: ``/v1/completions`` (FIM through ``suffix``) or
  ``/v1/chat/completions``, requests sent concurrently with httpx
* ``samples``  - a JSONL file of pre-generated ``{"task_id", "completion"}`` records, scored as given

Each module imports its heavy dependencies (torch, httpx) only when a backend is built.
"""
