"""Whether the stack's images hold this source tree's app and Dockerfiles.

The app (``validation/app/``) and the stack's files are baked into the
images when they are built. An image built from an older checkout would run
the old app (a probe mode or a header the new code relies on missing) without
a word, so every image carries a label with a digest of what it was built
from (:data:`SOURCE_LABEL`, passed as the ``LBSIM_SOURCE`` build argument),
and :func:`lbsim.validation.lifecycle.up` rebuilds (from the layer cache:
seconds) when an image's label differs from the tree's digest.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from lbsim.validation.docker import run

#: the image label holding the digest of the sources it was built from
SOURCE_LABEL = "org.lbsim.source"
#: the folders of validation/ the images are built from
SOURCE_DIRS = ("app", "stack")


def source_digest(validation_dir: Path) -> str:
    """A digest of every file under ``validation_dir``'s app/ and stack/ (names and bytes)."""
    return _digest(validation_dir.resolve())


@functools.cache
def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for sub in SOURCE_DIRS:
        for path in sorted(p for p in (root / sub).rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix().encode()
            data = path.read_bytes()
            h.update(len(rel).to_bytes(4, "big") + rel + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:20]


def image_source(docker: str, image: str) -> str | None:
    """The source digest ``image`` was built from ('' without the label), None if absent."""
    fmt = '{{ index .Config.Labels "' + SOURCE_LABEL + '" }}'
    proc = run([docker, "image", "inspect", "-f", fmt, image], check=False)
    if proc.returncode != 0:
        return None
    value = proc.stdout.strip()
    return "" if value in ("", "<no value>") else value


def stale_images(docker: str, images: list[str], digest: str) -> list[str]:
    """The images that are missing or were built from other sources than ``digest``."""
    return [i for i in images if image_source(docker, i) != digest]
