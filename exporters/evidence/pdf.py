"""PDF from the HTML report, with WeasyPrint when it is installed (`pip install sentinel-dengbao[pdf]`).

WeasyPrint needs Pango (>= 1.44) from the operating system, so it is an optional extra and never a
hard dependency: without it `available()` is False and `render_pdf` raises `PdfUnavailable` saying why.
Chinese text needs a CJK font on the machine (e.g. fonts-noto-cjk or fonts-wqy-microhei).
"""
from __future__ import annotations

from typing import Optional


class PdfUnavailable(RuntimeError):
    pass


def _import_error() -> Optional[str]:
    try:
        import weasyprint  # noqa: F401
    except Exception as exc:  # ImportError, or OSError when the Pango libraries are missing
        return f"{type(exc).__name__}: {exc}"
    return None


def available() -> bool:
    return _import_error() is None


def unavailable_reason() -> Optional[str]:
    """None when PDF export works here, else what is missing and how to get it."""
    problem = _import_error()
    if problem is None:
        return None
    return ("PDF export needs WeasyPrint and Pango (pip install 'sentinel-dengbao[pdf]'; "
            f"apt-get install libpango-1.0-0 libpangoft2-1.0-0): {problem}")


def render_pdf(html: str) -> bytes:
    reason = unavailable_reason()
    if reason is not None:
        raise PdfUnavailable(reason)
    import weasyprint

    return weasyprint.HTML(string=html, url_fetcher=_refuse_fetch).write_pdf()


def _refuse_fetch(url: str, *args, **kwargs):
    # The report is self-contained; anything it would fetch is a bug, and an export never goes online.
    raise ValueError(f"the evidence report must not load external resources ({url[:80]})")
