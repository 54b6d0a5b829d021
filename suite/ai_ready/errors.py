"""Errors that mean "the user gave us something we cannot use".

The CLI turns an :class:`InputError` into one line on stderr and exit code 2,
never a traceback; everything else is a bug or a failed measurement.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input: say what was wrong and what is accepted, in one line."""

    exit_code = 2
