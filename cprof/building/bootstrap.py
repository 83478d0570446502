"""How a bare Python started by a compiler shim or the build server finds cprof's modules fast."""

from __future__ import annotations

import os


def python_bootstrap(cache_dir: str | None) -> str:
    """Python code that makes a bare interpreter (-S: no site, no .pth files, no site-packages scan: a third of the
    start-up time of every compile) find our imports, and keep their bytecode in the cache even when
    PYTHONDONTWRITEBYTECODE is set (else every compile would compile the wrapper's modules again)."""
    import cprof
    import pycparser

    package_paths = [os.path.dirname(os.path.dirname(os.path.abspath(m.__file__))) for m in (cprof, pycparser)]
    code = f"import sys; sys.path[:0] = {list(dict.fromkeys(package_paths))!r}; "
    if cache_dir:
        code += f"sys.dont_write_bytecode = False; sys.pycache_prefix = {os.path.join(cache_dir, 'pycache')!r}; "
    return code
