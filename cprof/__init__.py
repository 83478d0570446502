"""cprof: an instrumentation profiler for C programs."""

__version__ = "0.1.0"
