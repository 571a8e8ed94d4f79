"""What one fetched HTML page shows the rules: links (and which are hidden), scripts, frames, dates, and the
visible text the tamper comparison reads. Parsed with lxml's HTML parser (libxml2, as forgiving as a
browser about broken markup); the page's own <style> blocks are matched with cssselect2 and tinycss2, so a
link hidden by a class rule counts as hidden as one hidden by its style attribute. Stylesheets the page
loads from other files are not fetched: a rule there is not seen (docs/websites.md).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Optional
from urllib.parse import unquote, urljoin, urlsplit

import cssselect2
import lxml.html
import tinycss2
from lxml import etree

MAX_LINKS = 5000
_DATE = re.compile(r"(20\d\d|19\d\d)\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
_URL_DATE = re.compile(r"(?:/|t)(20\d\d)[-/]?(\d\d)[-/]?(\d\d)(?:[_/]|\d)")
_NEG_OFFSET = re.compile(r"^-\s*(\d+(?:\.\d+)?)(px|em|rem|pt|%)?$")
_ZERO = re.compile(r"^0*(\.0+)?(px|em|rem|pt|%)?$")
_TINY = re.compile(r"^(0*(\.\d+)?|1)(px)?$")
_SKIP_TEXT = ("script", "style", "noscript", "template")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")


@dataclass(slots=True)
class Link:
    url: str
    text: str
    hidden: Optional[str] = None  # why it is not shown to a visitor (display:none, off-screen, ...)


@dataclass(slots=True)
class Frame:
    url: str
    hidden: Optional[str] = None


@dataclass(slots=True)
class Suspect:
    """Code that looks implanted (挂马), with the other hosts it loads from (empty: it names none we can read)."""

    what: str
    hosts: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.what


@dataclass
class PageFacts:
    url: str
    title: str = ""
    links: list[Link] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)  # absolute src of external scripts
    images: list[str] = field(default_factory=list)  # absolute src of images (the broken-link rules count them)
    frames: list[Frame] = field(default_factory=list)
    malicious: list[Suspect] = field(default_factory=list)  # what looked like implanted code, with an excerpt
    newest: Optional[date] = None  # the newest date the page's text (or its entry URLs) shows
    digest: str = ""  # sha256 of the body: one page reached by two URLs (/ and /index.html) is judged once


def _declarations(css: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for decl in tinycss2.parse_blocks_contents(css, skip_whitespace=True, skip_comments=True):
        if decl.type == "declaration":
            out[decl.lower_name] = tinycss2.serialize(decl.value).strip().lower().replace("!important", "").strip()
    return out


def hiding(decls: dict[str, str]) -> Optional[str]:
    """Why these declarations hide an element from a visitor, or None."""
    if decls.get("display") == "none":
        return "display:none"
    if decls.get("visibility") in ("hidden", "collapse"):
        return f"visibility:{decls['visibility']}"
    if _ZERO.match(decls.get("opacity", "1")):
        return "opacity:0"
    if _ZERO.match(decls.get("font-size", "1")):
        return "font-size:0"
    for prop in ("left", "top", "text-indent", "margin-left", "margin-top", "right"):
        m = _NEG_OFFSET.match(decls.get(prop, ""))
        if m and float(m.group(1)) >= (100 if m.group(2) in ("em", "rem") else 500):
            if prop == "text-indent" or decls.get("position") in ("absolute", "fixed", "relative"):
                return f"off-screen ({prop}:{decls[prop]})"
    if decls.get("overflow") == "hidden" and any(_TINY.match(decls.get(p, "x")) for p in ("height", "width")):
        return "zero-size box with overflow:hidden"
    return None


def _style_rules(root: Any) -> Optional[cssselect2.Matcher]:
    """A matcher of the page's <style> rules that hide something; None when there are none (the usual case)."""
    matcher: Optional[cssselect2.Matcher] = None
    for style in root.iter("style"):
        css = style.text or ""
        if not css.strip():
            continue
        for rule in tinycss2.parse_stylesheet(css, skip_whitespace=True, skip_comments=True):
            if rule.type != "qualified-rule":
                continue
            reason = hiding(_declarations(tinycss2.serialize(rule.content)))
            if reason is None:
                continue
            try:
                selectors = cssselect2.compile_selector_list(rule.prelude)
            except cssselect2.SelectorError:
                continue
            matcher = matcher or cssselect2.Matcher()
            for selector in selectors:
                matcher.add_selector(selector, reason)
    return matcher


class _Hidden:
    """Why an element is hidden (it or an ancestor), cached per element."""

    def __init__(self, root: Any, matcher: Optional[cssselect2.Matcher]) -> None:
        self.cache: dict[Any, Optional[str]] = {}
        self.by_rule: dict[Any, str] = {}
        if matcher is not None:
            for wrapper in cssselect2.ElementWrapper.from_html_root(root).iter_subtree():
                found = matcher.match(wrapper)
                if found:
                    self.by_rule[wrapper.etree_element] = f"{found[0][3]} (<style> rule)"

    def own(self, el: Any) -> Optional[str]:
        if el.get("hidden") is not None:
            return "hidden attribute"
        style = el.get("style")
        if style:
            reason = hiding(_declarations(style))
            if reason:
                return reason
        return self.by_rule.get(el)

    def __call__(self, el: Any) -> Optional[str]:
        chain = []
        node = el
        reason: Optional[str] = None
        while node is not None:
            if node in self.cache:
                reason = self.cache[node]
                break
            chain.append(node)
            reason = self.own(node)
            if reason:
                break
            node = node.getparent()
        for n in chain:
            self.cache[n] = reason
        return reason


def _tiny_frame(el: Any) -> bool:
    return any(_TINY.match((el.get(a) or "x").strip().lower()) for a in ("width", "height"))


def _date(y: str, m: str, d: str) -> Optional[date]:
    try:
        return date(int(y), int(m), int(d))
    except ValueError:
        return None


#: a line that shows the page's clock, not when something was published ("今天是 2026年12月3日 星期四")
_CLOCK_LINE = re.compile(r"今天是|今日是|今天：|当前日期|当前时间|现在是|北京时间")


def newest_date(text: str, urls: list[str], today: date) -> Optional[date]:
    """The newest real date (not after today) in the text or in dated entry URLs (.../t20261130_1.html). A line
    that shows the page's own clock is not read: a server-rendered "今天是..." would make any page look fresh."""
    best: Optional[date] = None
    dated = "\n".join(line for line in text.splitlines() if not _CLOCK_LINE.search(line))
    for y, m, d in _DATE.findall(dated):
        day = _date(y, m, d)
        if day and day <= today and (best is None or day > best):
            best = day
    for url in urls:
        for y, m, d in _URL_DATE.findall(urlsplit(url).path):
            day = _date(y, m, d)
            if day and day <= today and (best is None or day > best):
                best = day
    return best


_OBFUSCATED = (
    (re.compile(r"eval\s*\(\s*(unescape|atob|decodeURIComponent)\s*\(", re.I), "eval of decoded text"),
    (re.compile(r"document\.write\s*\(\s*unescape\s*\(", re.I), "document.write of unescaped text"),
    (re.compile(r"String\.fromCharCode\s*\(\s*(\d+\s*,\s*){20,}", re.I), "a long String.fromCharCode chain"),
    (re.compile(r"(\\x[0-9a-f]{2}){60,}", re.I), "a long hex-escaped string"),
)
# a host name followed by a path, "//" before it or not (old snippets glue the scheme on from a variable)
_HOST = re.compile(r"(?<![A-Za-z0-9.@-])((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})(?::\d+)?/")
_WRITTEN_TAG = re.compile(r"""document\.write(?:ln)?\s*\(.{0,200}?<\s*(iframe|script)[^>]*?src\s*=\s*\\?['"]?"""
                          r"""(https?:)?//([^/'"\\\s>]+)""", re.I | re.S)


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_WIDER = {"gb2312": "gb18030", "gbk": "gb18030", "iso-8859-1": "cp1252", "latin-1": "cp1252"}  # as browsers read them


def charset(body: bytes, declared: Optional[str]) -> str:
    """The page's encoding as a browser settles it: the HTTP header's, else a <meta> charset, else UTF-8 when
    the bytes are UTF-8, else GB18030 (the encoding of Chinese pages that declare none)."""
    name = declared
    if not name:
        m = _META_CHARSET.search(body[:4096])
        name = m.group(1).decode("ascii") if m else None
    if name:
        name = name.strip().lower()
        try:
            "".encode(name)
            return _WIDER.get(name, name)
        except LookupError:
            pass
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


def parse(url: str, body: bytes, *, on_site: Any, today: date, dynamic: list[str] | None = None,
          entries: Optional[str] = None, encoding: Optional[str] = None) -> tuple[PageFacts, Any]:
    """Facts of an HTML page. `on_site(url) -> bool` tells the site's own URLs from external ones; `encoding`
    is the charset the HTTP answer declared, if any. Returns the facts and the parsed root (for the text
    comparison; let go of it when done)."""
    facts = PageFacts(url=url, digest=hashlib.sha256(body).hexdigest())
    try:
        text = body.decode(charset(body, encoding), errors="replace")
        text = _XML_DECL.sub("", text, count=1)  # lxml refuses a str that still declares its encoding
        root = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return facts, None
    base = url
    for b in root.iter("base"):
        if b.get("href"):
            base = urljoin(url, b.get("href"))
            break
    for t in root.iter("title"):
        facts.title = (t.text_content() or "").strip()[:300]
        break
    hidden = _Hidden(root, _style_rules(root))
    for a in root.iter("a", "area"):
        href = (a.get("href") or "").strip()
        if not href or href.startswith(("#", "javascript:", "mailto:", "tel:")):
            continue
        if len(facts.links) >= MAX_LINKS:
            break
        facts.links.append(Link(url=urljoin(base, href).split("#", 1)[0], text=" ".join(a.text_content().split())[:200],
                                hidden=hidden(a)))
    for img in root.iter("img"):
        src = (img.get("src") or "").strip()
        if src and not src.startswith("data:") and len(facts.images) < MAX_LINKS:
            facts.images.append(urljoin(base, src).split("#", 1)[0])
    for s in root.iter("script"):
        src = (s.get("src") or "").strip()
        if src:
            facts.scripts.append(urljoin(base, src))
            continue
        code = s.text or ""
        for pattern, what in _OBFUSCATED:
            m = pattern.search(code)
            if m:
                # what the decoded text loads: an allowed statistics snippet written this way is no 挂马
                hosts = tuple(sorted({h.lower() for h in _HOST.findall(unquote(code))
                                      if not on_site(f"http://{h}/")}))
                excerpt = code[max(0, m.start() - 20):m.end() + 40]
                facts.malicious.append(Suspect(f"inline script: {what}: {excerpt!r}"
                                               + (f" (loads from {', '.join(hosts)})" if hosts else ""), hosts))
        for m in _WRITTEN_TAG.finditer(code):
            target = f"//{m.group(3)}"
            if not on_site(urljoin(base, target)):
                facts.malicious.append(Suspect(f"inline script writes an <{m.group(1).lower()}> from {m.group(3)}",
                                               (m.group(3).lower(),)))
    for f in root.iter("iframe", "frame"):
        src = (f.get("src") or "").strip()
        if not src or src.startswith(("about:", "javascript:")):
            continue
        absolute = urljoin(base, src)
        reason = hidden(f) or ("zero-size frame" if _tiny_frame(f) else None)
        facts.frames.append(Frame(url=absolute, hidden=reason))
        if reason and not on_site(absolute):
            facts.malicious.append(Suspect(f"hidden frame ({reason}) loads {absolute}",
                                           ((urlsplit(absolute).hostname or "").lower(),)))
    for sel in dynamic or []:  # dynamic parts (a clock, a counter) say nothing about the page's information
        drop(root, sel)
    scope_el = root
    if entries:
        found = select(root, entries)
        scope_el = found[0] if found else None
    text = visible_text(scope_el) if scope_el is not None else ""
    facts.newest = newest_date(text, [lk.url for lk in facts.links], today)
    return facts, root


def select(root: Any, selector: str) -> list[Any]:
    try:
        wrapper = cssselect2.ElementWrapper.from_html_root(root)
        return [w.etree_element for w in wrapper.query_all(selector)]
    except cssselect2.SelectorError:
        return []


def drop(root: Any, selector: str) -> None:
    for el in select(root, selector):
        parent = el.getparent()
        if parent is not None:
            el.drop_tree()


def entry_links(root: Any, selector: str, base: str) -> list[str]:
    out = []
    for el in select(root, selector):
        for a in el.iter("a"):
            if a.get("href"):
                out.append(urljoin(base, a.get("href").strip()).split("#", 1)[0])
    return out


def visible_text(el: Any) -> str:
    """The element's text as a visitor reads it: no script or style, one line per block, spaces collapsed."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag in _SKIP_TEXT:
            if node.tail:
                parts.append(node.tail)
            return
        if tag and tag in _BLOCKS:
            parts.append("\n")
        if isinstance(node.tag, str) and node.text:
            parts.append(node.text)
        for child in node:
            walk(child)
        if tag and tag in _BLOCKS:
            parts.append("\n")
        if node.tail:
            parts.append(node.tail)

    walk(el)
    lines = (" ".join(line.split()) for line in "".join(parts).split("\n"))
    return "\n".join(line for line in lines if line)


_BLOCKS = frozenset({"p", "div", "li", "tr", "br", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table",
                     "section", "article", "header", "footer", "nav", "dd", "dt", "td", "th", "title", "body",
                     "blockquote", "pre", "form", "main", "aside"})
