from __future__ import annotations

from server.markdown import render, sanitize
from tests.support.html import assert_safe, elements


def test_markdown_renders_common_elements():
    html = render("# Title\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n`code` ~~old~~")
    tags = [tag for tag, _ in elements(html)]
    assert {"h1", "ul", "li", "table", "code", "s"} <= set(tags)


def test_hostile_markup_is_neutralised():
    hostile = [
        "<script>alert(1)</script>",
        '<img src="x" onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        '<iframe src="https://evil.example"></iframe>',
        "![img](javascript:alert(1))",
        '<svg onload="alert(1)"></svg>',
    ]
    for text in hostile:
        assert_safe(render(text))
        assert_safe(sanitize(text))


def test_links_get_safe_rel():
    html = render("[site](https://example.org)")
    assert elements(html)[1] == ("a", {"href": "https://example.org", "rel": "noopener noreferrer nofollow"})
