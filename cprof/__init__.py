"""cprof: an instrumentation profiler for C programs.

The Python API (cprof/api.py: load, diff, Run, Diff, CprofError...) is reached through this package, loaded on
first use: the compiler shims import this package on every compile and must not pay for the model and renderers."""

__version__ = "0.1.0"

_API = ("load", "diff", "compare", "Run", "Diff", "FunctionRecord", "CprofError", "CprofWarning")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module("cprof.api"), name)
    raise AttributeError(f"module 'cprof' has no attribute '{name}'")
