"""The documentation site: ``mkdocs build --strict`` passes (broken links, unknown pages, docstrings
mkdocstrings cannot render all fail it), and the getting-started page shows the README's commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")
pytest.importorskip("material")

ROOT = Path(__file__).resolve().parents[1]


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
        timeout=300,
        check=False,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "WARNING" not in log, log
    # the API reference is generated from the docstrings
    reference = (site / "reference" / "histogram" / "index.html").read_text(encoding="utf-8")
    assert "value_at_quantile" in reference
    assert "significant_figures" in reference
    aggregator = (site / "reference" / "aggregator" / "index.html").read_text(encoding="utf-8")
    assert "ingest" in aggregator
    for page in ("getting-started", "metrics", "accuracy", "benchmarks"):
        assert (site / page / "index.html").is_file(), page


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)]


def test_getting_started_shows_the_readme_commands() -> None:
    readme = _bash_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(readme) >= 2, "the README starts with two bash commands"
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    for command in readme[:2]:
        assert command in _bash_blocks(page), f"docs/getting-started.md lacks the README command {command!r}"


def test_links_out_of_docs_point_at_the_repository() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import mkdocs_hooks

    class _File:
        src_uri = "guide/page.md"

    class _Page:
        file = _File()

    config = {
        "repo_url": "https://example.org/jm/",
        "docs_dir": str(ROOT / "docs"),
        "config_file_path": str(ROOT / "mkdocs.yml"),
    }
    md = (
        "[readme](../../README.md#install) [ex](../../examples/quickstart.py) [dir](../../examples) "
        "[gone](../../no-such-file.md) [inside](../histogram.md) [web](https://x.org/a.md)"
    )
    out = mkdocs_hooks.on_page_markdown(md, _Page(), config, None)
    assert "[readme](https://example.org/jm/blob/main/README.md#install)" in out
    assert "[ex](https://example.org/jm/blob/main/examples/quickstart.py)" in out
    assert "[dir](https://example.org/jm/tree/main/examples)" in out
    assert "[gone](../../no-such-file.md)" in out  # left for the strict build to reject
    assert "[inside](../histogram.md)" in out
    assert "[web](https://x.org/a.md)" in out


def test_sphinx_roles_in_docstrings_read_as_code() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import mkdocs_hooks

    html = (
        "see :class:<code>~jobmetrics.windows.RowBlock</code> and :meth:<code>flush</code>; "
        "a :b:<code>c</code>"
    )
    out = mkdocs_hooks.on_page_content(html, None, None, None)
    assert out == "see <code>RowBlock</code> and <code>flush</code>; a :b:<code>c</code>"
