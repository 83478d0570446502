"""Loading runs from the store by reference (latest, tag, id, path) into Run objects."""

from __future__ import annotations

from cprof.model.run import Run
from cprof.run.store import Store


def load_runs(store: Store, reference: str | None) -> list[Run]:
    """All runs a reference names: one run, or every run of a `profile --repeat` group."""
    return [Run.load(entry.path, entry.meta, entry.id) for entry in store.resolve(reference)]
