"""The numeric types of every scenario key: strict, so a boolean is never a number.

YAML 1.1 reads ``yes``/``no``/``on``/``off``/``true``/``false`` as booleans and
Python's ``bool`` is an ``int``: in pydantic's lax mode ``rate: true`` or
``seed: yes`` would silently run as 1. These aliases are strict (a boolean or a
string is refused; an integer is a valid float), and finite unless a key says
otherwise. Every numeric key of the schema, of a policy's options and of a
distribution uses one of them; ``tests/test_strict_numbers.py`` walks the whole
schema to keep it so.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict

Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]
#: strictly between 0 and 1
OpenFraction = Annotated[float, Strict(), Field(gt=0, lt=1, allow_inf_nan=False)]
#: report.percentile_error: below 10⁻⁴ the histograms grow to millions of buckets
PercentileError = Annotated[float, Strict(), Field(ge=1e-4, le=0.05, allow_inf_nan=False)]
#: clients.subnets: each /24 is drawn up front
Subnets = Annotated[int, Strict(), Field(ge=1, le=1_000_000)]
#: a query's hot_keys: a Zipf CDF of this many rows is built; larger is a key space
HotKeys = Annotated[int, Strict(), Field(ge=0, le=10_000_000)]
Int = Annotated[int, Strict()]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
