"""Errors of filter parsing, evaluation and storage: all ValueError/LookupError, so an API maps them to 4xx."""

from __future__ import annotations


class FilterSyntaxError(ValueError):
    """A malformed filter expression. `column` is 1-based; the message says what was expected and what was found."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"at column {column}: {message}")
        self.column = column
        self.detail = message


class FilterParameterError(ValueError):
    """A request-time value is missing or malformed (a $PARAMETER, or the current item of a related-items request)."""


class InvalidFilterNameError(ValueError):
    pass


class FilterExistsError(ValueError):
    pass


class FilterNotFoundError(LookupError):
    pass
