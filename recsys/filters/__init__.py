"""Amazon Personalize filter expressions: parse, evaluate, store by name, and backfill filtered results.

    flt = compile_filter(
        'EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")'
    )
    kept = flt.apply(candidates, items=item_rows, user_interactions=history, params={"GENRE": '"horror"'})

See README.md for the grammar, the semantics and the errors.
"""

from recsys.filters.backfill import fill_to_k
from recsys.filters.errors import (
    FilterExistsError,
    FilterNotFoundError,
    FilterParameterError,
    FilterSyntaxError,
    InvalidFilterNameError,
)
from recsys.filters.evaluate import Filter, compile_filter, parse_param_values
from recsys.filters.registry import FilterRecord, FilterRegistry, FilterStore, InMemoryFilterStore, validate_name
from recsys.filters.syntax import ParsedFilter, format_filter, parse_filter

__all__ = [
    "Filter",
    "FilterExistsError",
    "FilterNotFoundError",
    "FilterParameterError",
    "FilterRecord",
    "FilterRegistry",
    "FilterStore",
    "FilterSyntaxError",
    "InMemoryFilterStore",
    "InvalidFilterNameError",
    "ParsedFilter",
    "compile_filter",
    "fill_to_k",
    "format_filter",
    "parse_filter",
    "parse_param_values",
    "validate_name",
]
