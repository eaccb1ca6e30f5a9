"""Alt text: real parsing of HTML and Markdown, edits by source offset, every other byte kept."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blipkit.alttext import clean_caption, fill_alt_text, local_image, scan_attributes
from test_index_helpers import cli_app, make_images, tiny_builtin  # noqa: F401


@pytest.fixture
def site(tmp_path: Path) -> Path:
    for name in ("a.png", "b c.png", "c.png"):
        (tmp_path / name).write_bytes(b"\x89PNG stand-in")
    return tmp_path


def describe(images):
    """A stand-in captioner: the file's stem (an inline image's size), and a character that needs escaping."""
    return {x: f"a picture of {x.stem if isinstance(x, Path) else f'{len(x)} bytes'} & more" for x in images}


def fill(text: str, kind: str, site: Path, **kw) -> tuple[str, list[dict]]:
    out, report = fill_alt_text(text, kind, describe, doc_dir=site, **kw)
    return out, report.rows


HTML_IN = (
    "<!DOCTYPE html>\r\n<html><head><title>t <img src=a.png></title>\r\n"
    '<script>var s = "<img src=a.png>"; if (a<b) {}</script></head>\r\n'
    '<body><!-- <img src="a.png"> -->\r\n'
    "<p>caf\u00e9 &amp; &eacute; <IMG SRC=a.png ALT=\"\">  <img src='b%20c.png' alt='Kept'> <img\r\n"
    '  src="c.png"\r\n  alt\r\n  class=x/>\r\n'
    '<pre><img src="c.png"></pre>\r\n'
    '<textarea><img src="a.png"></textarea>\r\n'
    '<img src="https://example.com/x.png"><img src="missing.png"><img src="data:image/png;base64,AA">\r\n'
    '<img src=a.png alt="" alt="second"><img src=a.png?v=2#top>\r\n'
    "</body></html>\r\n"
)
HTML_OUT = (
    "<!DOCTYPE html>\r\n<html><head><title>t <img src=a.png></title>\r\n"
    '<script>var s = "<img src=a.png>"; if (a<b) {}</script></head>\r\n'
    '<body><!-- <img src="a.png"> -->\r\n'
    "<p>caf\u00e9 &amp; &eacute; <IMG SRC=a.png alt=\"A &amp; more\">  "
    "<img src='b%20c.png' alt='Kept'> <img\r\n"
    '  src="c.png"\r\n  alt="C &amp; more"\r\n  class=x/>\r\n'
    '<pre><img alt="C &amp; more" src="c.png"></pre>\r\n'
    '<textarea><img src="a.png"></textarea>\r\n'
    '<img src="https://example.com/x.png"><img src="missing.png"><img src="data:image/png;base64,AA">\r\n'
    '<img src=a.png alt="A &amp; more" alt="second"><img alt="A &amp; more" src=a.png?v=2#top>\r\n'
    "</body></html>\r\n"
)


def test_html_fills_only_real_images_and_keeps_every_other_byte(site: Path) -> None:
    out, rows = fill(HTML_IN, "html", site)
    assert out == HTML_OUT
    actions = sorted((r["action"], r.get("src")) for r in rows)
    assert actions == sorted([
        ("filled", "a.png"), ("kept", "b%20c.png"), ("filled", "c.png"), ("filled", "c.png"),
        ("remote", "https://example.com/x.png"), ("missing", "missing.png"),
        ("failed", "data:image/png;base64,AA"), ("filled", "a.png"), ("filled", "a.png?v=2#top"),
    ])
    again, rows = fill(out, "html", site)
    assert again == out and not any(r["action"] == "filled" for r in rows)  # idempotent


def test_inline_data_uri_images_are_described_from_their_bytes(site: Path) -> None:
    payload = base64.b64encode(b"\x89PNG 13 bytes").decode()
    text = (f'<img src="data:image/png;base64,{payload[:8]}\n {payload[8:]}">'  # whitespace is allowed
            '<img src="data:image/svg+xml,%3Csvg%2F%3E"><img src="data:text/plain,hi">'
            '<img src="data:image/png;base64,@@@"><img src="data:image/png,">\n'
            f"![](data:image/gif;base64,{payload})\n")
    out, rows = fill(text, "html", site)
    assert [(r["action"], r.get("alt")) for r in rows] == [
        ("filled", "13 bytes & more"), ("filled", "6 bytes & more"), ("not-image", None), ("failed", None),
        ("failed", None)]
    assert out.startswith('<img alt="13 bytes &amp; more" src="data:image/png;base64,')
    assert "base64" in rows[3]["error"] and "no data" in rows[4]["error"]
    md, md_rows = fill(text.split("\n", 2)[2], "markdown", site)
    assert md == f"![13 bytes \\& more](data:image/gif;base64,{payload})\n"
    assert md_rows[0]["action"] == "filled"
    long = f'<img src="data:image/png;base64,{base64.b64encode(bytes(3000)).decode()}">'
    [row] = fill(long, "html", site)[1]
    assert row["action"] == "filled" and len(row["src"]) < 80 and "characters" in row["src"]


def test_html_overwrite_replaces_existing_alt(site: Path) -> None:
    out, _ = fill("<p><img alt='old' src=c.png></p>", "html", site, overwrite=True)
    assert out == '<p><img alt="C &amp; more" src=c.png></p>'


def test_html_non_ascii_alt_is_written_as_character_references(site: Path) -> None:
    french = lambda ps: {p: "un caf\u00e9" for p in ps}  # noqa: E731
    out, _ = fill_alt_text("<img src=a.png>", "html", french, doc_dir=site)
    assert out == '<img alt="Un caf&#233;" src=a.png>'


def test_attribute_scanner_follows_the_html_tokenizer() -> None:
    tag = "<img src=a.png alt  =  'x y' data-x=\"1>2\" hidden/>"
    attrs = scan_attributes(tag)
    assert [a.name for a in attrs] == ["src", "alt", "data-x", "hidden"]
    assert [tag[a.start : a.end] for a in attrs] == ["src=a.png", "alt  =  'x y'", 'data-x="1>2"', "hidden"]


MD_IN = """# Title ![](a.png)\r
\r
See `![](a.png)`, ![](b%20c.png "T") and ![kept](c.png) and ![  ](c.png).\r
\r
```\r
![](a.png)\r
```\r
\r
    ![](a.png)\r
\r
> quote ![](c.png)\r
\r
- item ![][ref], ![ref] and ![ref][]\r
\r
| a | b |\r
|---|---|\r
| ![](a.png) | ![](a.png) |\r
\r
<div><img src="a.png"></div>\r
\r
inline <img src="c.png" alt=""> html and [![](a.png)](http://x) ![](http://remote/x.png)\r
\r
[ref]: c.png "T"\r
"""
MD_OUT = """# Title ![A \\& more](a.png)\r
\r
See `![](a.png)`, ![B c \\& more](b%20c.png "T") and ![kept](c.png) and ![C \\& more](c.png).\r
\r
```\r
![](a.png)\r
```\r
\r
    ![](a.png)\r
\r
> quote ![C \\& more](c.png)\r
\r
- item ![C \\& more][ref], ![ref] and ![ref][]\r
\r
| a | b |\r
|---|---|\r
| ![A \\& more](a.png) | ![A \\& more](a.png) |\r
\r
<div><img alt="A &amp; more" src="a.png"></div>\r
\r
inline <img src="c.png" alt="C &amp; more"> html and [![A \\& more](a.png)](http://x) ![](http://remote/x.png)\r
\r
[ref]: c.png "T"\r
"""


def test_markdown_fills_images_but_not_code_and_keeps_the_rest(site: Path) -> None:
    out, rows = fill(MD_IN, "markdown", site)
    assert out == MD_OUT
    assert sum(r["action"] == "filled" for r in rows) == 10
    assert [r["src"] for r in rows if r["action"] == "remote"] == ["http://remote/x.png"]
    assert not any(r["action"] == "skipped" for r in rows)
    assert fill(out, "markdown", site)[0] == out


def test_markdown_overwrite_turns_shortcut_references_into_full_ones(site: Path) -> None:
    text = "![ref] and ![ref][] and ![old](c.png)\n\n[ref]: c.png\n"
    out, _ = fill(text, "markdown", site, overwrite=True)
    assert out == "![C \\& more][ref] and ![C \\& more][ref] and ![C \\& more](c.png)\n\n[ref]: c.png\n"


def test_markdown_output_renders_the_alt_text(site: Path) -> None:
    from markdown_it import MarkdownIt

    out, _ = fill("![](a.png) [x] ![](c.png)\n", "markdown", site)
    html = MarkdownIt("commonmark").render(out)
    assert 'alt="A &amp; more"' in html and 'alt="C &amp; more"' in html


def test_local_image_resolution(tmp_path: Path) -> None:
    assert local_image("https://x/y.png", tmp_path) is None
    assert local_image("//cdn/y.png", tmp_path) is None
    assert local_image("data:image/png;base64,AA", tmp_path) is None
    assert local_image("img/a%20b.png?x=1#f", tmp_path) == tmp_path / "img" / "a b.png"
    assert local_image("/static/a.png", tmp_path, tmp_path / "site") == tmp_path / "site" / "static" / "a.png"
    assert local_image("file:///srv/a.png", tmp_path) == Path("/srv/a.png")
    assert clean_caption("a picture of a dog on a beach") == "A dog on a beach"
    assert clean_caption("two dogs") == "Two dogs"


def test_cli_alt_text_in_place_and_out(cli_app, tiny_builtin, tmp_path: Path) -> None:  # noqa: F811
    make_images(tmp_path / "img", 2)
    raw = "<p>\xe9t\xe9 <img src='img/img000.png'> <img src=img/img001.png alt=x></p>\n".encode("latin-1")
    page = tmp_path / "page.html"
    page.write_bytes(raw)
    runner = CliRunner()
    common = ["--model", str(tiny_builtin), "--decoding", "greedy", "--max-new-tokens", "4"]
    args = ["alt-text", str(page), "--out", str(tmp_path / "out.html"), "--json", *common]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["action"] for r in rows] == ["filled", "kept"]
    new = (tmp_path / "out.html").read_bytes()
    alt = rows[0]["alt"]
    assert alt and new.startswith(b"<p>\xe9t\xe9 <img alt=")
    assert new.endswith(b" src=img/img001.png alt=x></p>\n")
    assert page.read_bytes() == raw  # --out leaves the original alone
    result = runner.invoke(cli_app, ["alt-text", str(page), "--in-place", *common])
    assert result.exit_code == 0 and page.read_bytes() == new
    doc = tmp_path / "doc.md"
    doc.write_text("![](img/img000.png) ![](nope.png)\n")
    result = runner.invoke(cli_app, ["alt-text", str(doc), *common])
    assert result.exit_code == 2  # a missing image is a partial failure
    assert result.stdout.startswith("![") and "](img/img000.png) ![](nope.png)" in result.stdout


def test_cli_alt_text_captions_an_inline_image(cli_app, tiny_builtin, tmp_path: Path) -> None:  # noqa: F811
    make_images(tmp_path / "img", 1)
    payload = base64.b64encode((tmp_path / "img" / "img000.png").read_bytes()).decode()
    page = tmp_path / "page.html"
    page.write_text(f'<p><img src="data:image/png;base64,{payload}"></p>\n')
    args = ["alt-text", str(page), "--in-place", "--json", "--model", str(tiny_builtin),
            "--decoding", "greedy", "--max-new-tokens", "4"]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["action"] == "filled" and row["alt"] and "characters)" in row["src"]
    assert page.read_text().startswith('<p><img alt="') and payload in page.read_text()
