"""The reference in docs/ builds without a broken link (``mkdocs build --strict``), and the README's links to
it point at pages that exist."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import REPO


def test_the_docs_build_strictly(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-f",
            str(REPO / "mkdocs.yml"),
            "-d",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "reliability" / "index.html").exists()


def test_every_readme_link_points_at_a_file():
    text = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert any(link.startswith("docs/") for link in links)
    missing = [link for link in links if "://" not in link and not (REPO / link).exists()]
    assert not missing, missing
