"""The HTML index of a directory without index.html: names, CIDs and DAG sizes (Tsize), with
links to each entry and to the directory as a CAR, escaped throughout (names come from peers)."""

from __future__ import annotations

import hashlib
import html
import urllib.parse

from blockmesh import __version__
from blockmesh.data.cid import CID
from blockmesh.data.gateway.walk import Entry

# Part of the listing's ETag: a new gateway version may render differently, so caches must not
# keep an old rendering (the spec's "DirIndex-<version>_CID-<cid>").
TEMPLATE_VERSION = hashlib.sha256(f"blockmesh/{__version__}/listing-1".encode()).hexdigest()[:8]


def etag(cid: CID) -> str:
    return f'"DirIndex-{TEMPLATE_VERSION}_CID-{cid}"'


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def render(content_path: str, cid: CID, entries: list[Entry], base: str) -> bytes:
    """`base` is the URL path of the directory itself, ending in '/'."""
    title = html.escape(content_path)
    rows = []
    for entry in entries:
        href = html.escape(base + urllib.parse.quote(entry.name, safe=""), quote=True)
        rows.append(f'<tr><td><a href="{href}">{html.escape(entry.name)}</a></td>'
                    f'<td><code>{entry.cid}</code></td>'
                    f'<td class="size">{_size(entry.tsize)}</td></tr>')
    car = html.escape(base + "?format=car", quote=True)
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:.2em 1em}}.size{{text-align:right}}
code{{font-size:.85em;color:#555}}</style></head>
<body><h1>Index of {title}</h1><p><code>{cid}</code> &middot; <a href="{car}">download as CAR</a>
</p><table><tr><th>Name</th><th>CID</th><th>DAG size</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    return page.encode()
