"""The validation stories lbsim replays on the real stack (``lbsim story NAME``).

Each is one of the failures our users come with, sized for a 2-core machine;
its scenario lives under ``scenarios/stories/`` and runs in the simulator as
shipped.
"""

from __future__ import annotations

from pathlib import Path

from lbsim.validation.stories.harness import Story, Variant

#: the repository's scenarios (stories name their files relative to it)
SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios" / "stories"

TOO_MANY_CONNECTIONS = Story(
    name="too-many-connections",
    title="Too many connections: persistent connections x PHP workers above max_connections",
    file=SCENARIOS / "too-many-connections.yaml",
    about=(
        "24 PHP workers keep a persistent connection each against max_connections 15: "
        "the workers that found the server full get error 1040 on every request they "
        "take. The fixes: a connection per request, or pm.max_children within the limit."
    ),
    variants=(
        Variant("persistent", (), "pconnect, 2 x 12 workers, max_connections 15"),
        Variant(
            "per_request",
            ("database.connect=per_request",),
            "the fix: a connection per request (closed when the request ends)",
        ),
        Variant(
            "fewer_workers",
            ("app.workers=7",),
            "the other fix: pm.max_children 7 (2 x 7 = 14 <= 15 connections)",
        ),
    ),
    counts=("completed", "db_1040"),
    zero={"per_request": ("db_1040",), "fewer_workers": ("db_1040",)},
)

STORIES: dict[str, Story] = {s.name: s for s in (TOO_MANY_CONNECTIONS,)}


def story(name: str) -> Story:
    """The story called ``name``; KeyError naming the known ones otherwise."""
    try:
        return STORIES[name]
    except KeyError:
        raise KeyError(f"no story {name!r}; the stories are: {', '.join(STORIES)}") from None
