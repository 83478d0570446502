"""cprof: an instrumentation profiler for C programs.

The Python API (cprof/api.py: load, diff, Run, Diff, CprofError...) and the Jupyter extension (cprof/jupyter.py,
`%load_ext cprof`) are reached through this package, loaded on first use: the compiler shims import this package on
every compile and must not pay for the model and renderers, nor for IPython."""

__version__ = "0.1.0"

_API = ("load", "diff", "build", "run", "profile", "run_program", "fallbacks", "tag", "untag", "tags", "runs", "remove",
        "prune", "merge", "Run", "Diff", "FunctionRecord", "BuildOptions", "BuildResult", "RunOptions", "TraceOptions",
        "CprofError", "CprofWarning")
_JUPYTER = ("load_ipython_extension",)
_LIBRARY = ("session",)  # C libraries called in-process (cprof/library/session.py)
__all__ = ["__version__", *_API, *_JUPYTER, *_LIBRARY]


def __getattr__(name: str):
    if name in _API or name in _JUPYTER or name in _LIBRARY:
        import importlib

        module = "cprof.api" if name in _API else "cprof.jupyter" if name in _JUPYTER else "cprof.library.session"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'cprof' has no attribute '{name}'")
