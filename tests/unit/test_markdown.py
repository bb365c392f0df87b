from __future__ import annotations

from server.markdown import render, sanitize
from server.web.filters import prose
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


def test_images_load_lazily_without_a_referrer():
    html = sanitize('<img src="https://a.example/x.png" referrerpolicy="unsafe-url" loading="eager" alt="x">')
    assert elements(html) == [
        ("img", {"src": "https://a.example/x.png", "alt": "x", "referrerpolicy": "no-referrer", "loading": "lazy"})
    ]


def test_only_language_classes_on_code_survive():
    html = sanitize(
        '<p class="evil">a</p><span class="language-python">b</span>'
        '<code class="evil language-python">c</code><code class="language-">d</code><code class="evil">e</code>'
    )
    kept = [("p", {}), ("span", {}), ("code", {"class": "language-python"}), ("code", {}), ("code", {})]
    assert elements(html) == kept


def test_html_stored_under_older_rules_meets_todays_when_shown():
    stored = '<p class="evil">See:</p><img src="https://a.example/x.png"><pre><code class="language-sh">ls</code></pre>'
    shown = elements(str(prose(stored)))
    assert ("p", {}) in shown and ("code", {"class": "language-sh"}) in shown
    assert ("img", {"src": "https://a.example/x.png", "referrerpolicy": "no-referrer", "loading": "lazy"}) in shown
