"""mkdocs hooks of the documentation site (``hooks:`` in ``mkdocs.yml``).

The pages in ``docs/`` are also read on GitHub, where a link such as
``../examples/queue_server/README.md`` opens that file of the repository. On the site that file does
not exist, and ``mkdocs build --strict`` rejects the link. :func:`on_page_markdown` rewrites each
relative link that leaves ``docs/`` and names a file or folder that exists in the repository into a
link to it on the repository's web page (``repo_url``). A link to a missing file is left alone, so
the strict build still fails on it.

The docstrings use Sphinx roles (``:class:`~jobmetrics.Aggregator```), which mkdocstrings leaves as
text; :func:`on_page_content` shows them as plain code (``Aggregator``), as Sphinx would.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

__all__ = ["on_page_content", "on_page_markdown"]

_LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj|const):<code>(~?)([^<]+)</code>")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _outside_link(target: str, page_uri: str, docs_dir: Path, repo_root: Path) -> str | None:
    """The repository-relative path of ``target`` when it points out of ``docs/`` to an existing file."""
    if _SCHEME.match(target) or target.startswith("/"):
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(page_uri), target))
    if not joined.startswith("../"):
        return None  # inside docs/: mkdocs checks it
    resolved = (docs_dir / joined).resolve()
    try:
        relative = resolved.relative_to(repo_root)
    except ValueError:
        return None
    return relative.as_posix() if resolved.exists() else None


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Point links to repository files outside ``docs/`` at the repository's web page."""
    repo_url = str(config.get("repo_url") or "").rstrip("/")
    if not repo_url:
        return markdown
    docs_dir = Path(config["docs_dir"]).resolve()
    repo_root = Path(config["config_file_path"]).resolve().parent
    page_uri = page.file.src_uri

    def rewrite(match: re.Match[str]) -> str:
        path = _outside_link(match.group(2), page_uri, docs_dir, repo_root)
        if path is None:
            return match.group(0)
        kind = "tree" if (repo_root / path).is_dir() else "blob"
        anchor = match.group(3) or ""
        return f"{match.group(1)}{repo_url}/{kind}/main/{path}{anchor}{match.group(4)}"

    return _LINK.sub(rewrite, markdown)


def _role(match: re.Match[str]) -> str:
    target = match.group(2)
    shown = target.rsplit(".", 1)[-1] if match.group(1) else target
    return f"<code>{shown}</code>"


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Sphinx cross-reference roles left in rendered docstrings, shown as code."""
    return _ROLE.sub(_role, html)
