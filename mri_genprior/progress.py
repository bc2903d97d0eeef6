"""Progress bars for the work inside one batch: fit steps, λ-ladder rungs, sampler levels.

The pipeline shows them while it solves a batch with its own bar shown
(:func:`reporting`); a method loops over :func:`iterate`, which yields the items
unchanged under a nested ``tqdm`` bar, disabled (printing nothing) everywhere else:
library calls, tests, Dask workers.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Sequence, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
_SHOWN = contextvars.ContextVar("mri_genprior_inner_progress", default=False)


@contextlib.contextmanager
def reporting(shown: bool) -> Iterator[None]:
    """Show (``shown=True``) or hide the inner bars of the methods run inside the block."""
    token = _SHOWN.set(shown)
    try:
        yield
    finally:
        _SHOWN.reset(token)


def iterate(items: Sequence[T], desc: str, unit: str = "step") -> Iterator[T]:
    """Yield ``items`` under a nested bar (closed when the loop ends or breaks)."""
    with tqdm(total=len(items), desc=desc, unit=unit, leave=False, disable=not _SHOWN.get()) as bar:
        for item in items:
            yield item
            bar.update()
