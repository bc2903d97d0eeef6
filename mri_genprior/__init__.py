"""mri_genprior: accelerated MRI reconstruction by enforcing deep generative priors.

Conventions (see ``docs/formats.md``): k-space is ``(slices, coils, H, W)`` with H the
readout and W the phase-encode axis; centred orthonormal FFTs over the last two axes;
complex arrays are ``complex64``.
"""

__version__ = "0.1.0"


class MriGenpriorError(Exception):
    """A user-facing error: bad input, mismatched files or settings.

    The CLI prints its message on one line and exits with status 2.
    """


def check_choice(what: str, value, choices) -> None:
    """Raise :class:`MriGenpriorError` ``"{what} {value!r}: choose from a, b, ..."`` unless
    ``value`` is one of ``choices`` (any iterable of strings, e.g. a registry dict)."""
    if value not in choices:
        raise MriGenpriorError(f"{what} {value!r}: choose from {', '.join(choices)}")
