"""Workloads from access logs: nginx/Apache ``combined``, a custom nginx
``log_format``, HAProxy's HTTP log.

:func:`from_log` streams a log into a :class:`LogWorkload` (class weights,
rate schedule, clients, heavy users, response times);
:mod:`lbsim.accesslog.fragment` writes it as a scenario's ``workload:``
section. ``lbsim workload from-log`` is the command.
"""

from __future__ import annotations

from lbsim.accesslog.classes import ClassPatternError
from lbsim.accesslog.formats import LogFormatError
from lbsim.accesslog.read import AccessLogError, from_log
from lbsim.accesslog.summary import ClassSummary, HeavyFit, LogWorkload

__all__ = [
    "AccessLogError",
    "ClassPatternError",
    "ClassSummary",
    "HeavyFit",
    "LogFormatError",
    "LogWorkload",
    "from_log",
]
