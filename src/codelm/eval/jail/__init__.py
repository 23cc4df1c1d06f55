"""Code that runs inside a sandbox worker process (stdlib only, no codelm imports).

The worker interpreter loads this package under a private name (see
``codelm.eval.sandbox._BOOTSTRAP``) without importing ``codelm`` itself, so that nothing heavy is
imported into the process every sample is forked from. Modules use relative imports only.

* ``linux``      - ctypes wrappers for unshare/setns/mount/prctl/capset
* ``isolate``    - one-time namespaces (user, network, mount, PID) and id mapping for the worker
* ``filesystem`` - the read-only host view: hidden directories, minimal /dev, remounts
* ``child``      - the per-sample process (nested PID namespace, session, rlimits, exec)
* ``outcome``    - draining output, enforcing the wall clock, naming the verdict
* ``cgroup``     - one memory cgroup per worker: a sample's processes capped together
* ``accounting`` - the same cap where no cgroup can be made: the worker sums and kills
* ``worker``     - the job loop: files in, verdict out
* ``protocol``   - length-prefixed JSON frames between parent and worker
"""
