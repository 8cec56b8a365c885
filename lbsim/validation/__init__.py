"""The real stack: compose/config generation from a scenario (replay and calibration to come)."""

from lbsim.validation.compose import StackFiles, StackOptions, generate_stack
from lbsim.validation.policies import ReplayUnsupported, haproxy_rule, nginx_rule, replayable

__all__ = [
    "ReplayUnsupported",
    "StackFiles",
    "StackOptions",
    "generate_stack",
    "haproxy_rule",
    "nginx_rule",
    "replayable",
]
