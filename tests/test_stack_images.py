"""Stack images carry the digest of the app and Dockerfiles they were built from;
an image from another checkout is stale and rebuilt (no Docker needed: a fake CLI)."""

from __future__ import annotations

import os
from pathlib import Path

from lbsim.validation.compose import VALIDATION_DIR
from lbsim.validation.images import SOURCE_LABEL, source_digest, stale_images


def _tree(root: Path, app: str) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "stack" / "php-fpm").mkdir(parents=True)
    (root / "app" / "index.php").write_text(app)
    (root / "stack" / "php-fpm" / "Dockerfile").write_text("FROM x\n")
    (root / "results").mkdir()
    (root / "results" / "r.json").write_text("{}")
    return root


def test_the_digest_follows_the_app_and_stack_files_only(tmp_path: Path) -> None:
    a = source_digest(_tree(tmp_path / "a", "<?php echo 1;"))
    b = source_digest(_tree(tmp_path / "b", "<?php echo 2;"))
    same = _tree(tmp_path / "c", "<?php echo 1;")
    (same / "results" / "other.json").write_text("[]")  # results are not built into images
    assert a != b and source_digest(same) == a
    assert len(source_digest(VALIDATION_DIR)) == 20


def test_every_dockerfile_labels_its_image_with_the_digest() -> None:
    for name in ("nginx", "haproxy", "php-fpm", "mariadb"):
        text = (VALIDATION_DIR / "stack" / name / "Dockerfile").read_text()
        assert "ARG LBSIM_SOURCE" in text and f"LABEL {SOURCE_LABEL}=$LBSIM_SOURCE" in text


def test_missing_unlabelled_and_foreign_images_are_stale(tmp_path: Path) -> None:
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$5" in\n'
        "  img/new) echo d1 ;;\n"
        "  img/old) echo d0 ;;\n"
        "  img/bare) echo '<no value>' ;;\n"
        "  *) echo 'No such image' >&2; exit 1 ;;\n"
        "esac\n"
    )
    os.chmod(fake, 0o755)
    images = ["img/new", "img/old", "img/bare", "img/gone"]
    assert stale_images(str(fake), images, "d1") == ["img/old", "img/bare", "img/gone"]
