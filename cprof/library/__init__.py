"""Profiling C libraries in-process from Python: sessions, libraries loaded with their header's prototypes, and
the C values passed through libffi (cprof.session() is session.session)."""
