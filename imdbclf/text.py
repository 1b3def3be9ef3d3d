"""The one text normaliser of every family, in training and in the served model: HTML markup and
entities out, whitespace folded. Scraped texts carry `<br />`, `&amp;` and `&#039;`; a model that learns
them as words learns the scraper. Only tags of HTML's own elements go: "<grin>" or "<3" are words."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

ELEMENTS = ("a|abbr|b|big|blockquote|br|center|cite|code|dd|del|div|dl|dt|em|font|h[1-6]|hr|i|img|ins|kbd|li|"
            "mark|ol|p|pre|q|s|small|span|strike|strong|sub|sup|table|tbody|td|th|thead|tr|tt|u|ul")
MARKUP = re.compile(rf"</?(?:{ELEMENTS})(?:\s[^<>]*)?/?>", re.IGNORECASE)


def normalize(text: str) -> str:
    """Tags out (each a space), then entities decoded (so an escaped "&lt;b&gt;" stays text), whitespace folded."""
    return " ".join(html.unescape(MARKUP.sub(" ", text)).split())


def prepared(texts: Iterable[object], normalize_text: bool = True) -> list[str]:
    """The texts as a family reads them: strings, normalised unless the family's setting says not."""
    return [normalize(str(t)) for t in texts] if normalize_text else [str(t) for t in texts]
