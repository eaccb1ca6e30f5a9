"""Reading text: paragraphs in reading order, moving by line and paragraph, which questions go to the
text, a screen's one description, and real OCR engines on rendered text."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.ocr import TextReader, TextResult
from assistant.ocr.compose import quote, where
from assistant.ocr.engine import Line
from assistant.ocr.layout import arrange, join_lines
from assistant.ocr.navigation import TextCursor
from assistant.ocr.questions import ALL, CONTAINS, TITLE, answer, route
from assistant.ocr.tesseract import parse_tsv

sys.path.insert(0, str(Path(__file__).parent))
from ocr_text import PARAGRAPHS, character_accuracy, render

H = 14  # text height of the synthetic lines


def _line(text: str, left: int, top: int, height: int = H) -> Line:
    return Line(text, left, top, max(1, len(text) * height // 2), height, 0.9)


def _texts(lines: list[Line]) -> list[str]:
    return [p.text for p in arrange(lines)]


# --- reading order and paragraphs ----------------------------------------------------------------

def test_lines_close_together_form_one_paragraph_and_a_gap_starts_another() -> None:
    lines = [_line("The first paragraph has", 10, 10), _line("two lines.", 10, 30),
             _line("After a gap, the second.", 10, 70)]
    assert _texts(lines) == ["The first paragraph has two lines.", "After a gap, the second."]


def test_two_columns_are_read_one_after_the_other() -> None:
    lines = [_line("Left column one", 10, 10), _line("Right column one", 400, 10),
             _line("left column two", 10, 30), _line("right column two", 400, 30)]
    assert _texts(lines) == ["Left column one left column two", "Right column one right column two"]


def test_a_heading_then_columns_then_a_footer() -> None:
    lines = [_line("Footer", 10, 300), _line("Right", 400, 60), _line("Big title", 10, 5, 30),
             _line("Left", 10, 60)]
    assert _texts(lines) == ["Big title", "Left", "Right", "Footer"]


def test_a_sidebar_is_read_before_the_article_beside_it() -> None:
    sidebar = [_line(f"Menu {i}", 10, 10 + 60 * i) for i in range(4)]
    article = [_line("Article line one", 200, 10), _line("article line two", 200, 28),
               _line("Second paragraph", 200, 90)]
    assert _texts(article + sidebar) == ["Menu 0", "Menu 1", "Menu 2", "Menu 3", "Article line one article "
                                         "line two", "Second paragraph"]


def test_a_page_with_sidebar_aligned_columns_and_buttons() -> None:
    """Paragraph rows aligned across two columns must not be read across: column 1, then column 2."""
    lines = [_line("Title bar", 10, 2), *[_line(m, 10 + 80 * i, 40) for i, m in enumerate(("File", "Edit"))],
             *[_line(f"Side {i}", 10, 80 + 44 * i) for i in range(5)],
             _line("Heading", 300, 80, 24)]
    for column, x in enumerate((300, 700)):
        for paragraph, y in enumerate((130, 200)):
            name = f"c{column}p{paragraph}"
            lines += [_line(f"{name} one", x, y), _line(f"{name} two", x, y + 20)]
    lines += [_line("Save", 600, 600), _line("Cancel", 760, 600)]
    assert _texts(lines) == ["Title bar", "File", "Edit", *[f"Side {i}" for i in range(5)], "Heading",
                             "c0p0 one c0p0 two", "c0p1 one c0p1 two", "c1p0 one c1p0 two",
                             "c1p1 one c1p1 two", "Save", "Cancel"]


def test_pieces_of_one_row_are_joined_but_far_apart_items_are_not() -> None:
    lines = [_line("world", 10 + 6 * H // 2 + 5, 10), _line("Hello", 10, 10),
             _line("File", 10, 100), _line("Edit", 200, 100), _line("View", 400, 100)]
    assert _texts(lines) == ["Hello world", "File", "Edit", "View"]


def test_text_of_another_size_is_its_own_paragraph() -> None:
    lines = [_line("Weather in Berlin", 10, 10, 30), _line("12 degrees, light rain", 10, 44)]
    assert _texts(lines) == ["Weather in Berlin", "12 degrees, light rain"]


def test_noise_and_unsure_lines_are_dropped() -> None:
    lines = [_line("| ~ =", 10, 10), Line("blurry", 10, 100, 50, H, 0.2), _line("Real text", 10, 200)]
    assert _texts(lines) == ["Real text"]


def test_box_edges_read_as_bars_are_dropped() -> None:
    assert _texts([_line("| | Cancel", 10, 10), _line("Save |", 300, 10)]) == ["Cancel", "Save"]


def test_hyphenated_words_are_joined_across_lines() -> None:
    assert join_lines(["an impor-", "tant word", "and a well-", "Known name"]) == \
        "an important word and a well- Known name"


def test_tesseract_lines_are_cut_at_wide_gaps() -> None:
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [(10, "Left"), (60, "col"), (400, "Right"), (450, "col")]
    tsv = "\n".join([header] + [f"5\t1\t1\t1\t1\t{i}\t{x}\t20\t40\t14\t95\t{w}"
                                 for i, (x, w) in enumerate(rows)])
    lines = parse_tsv(tsv, scale=2)
    assert [(line.text, line.left) for line in lines] == [("Left col", 5), ("Right col", 200)]


# --- speaking and moving -------------------------------------------------------------------------

def test_paragraphs_are_spoken_as_sentences() -> None:
    result = TextResult("x", paragraphs=[["Weather in Berlin"], ["12 degrees,", "light rain"], ["OK?"]])
    assert result.spoken == "Weather in Berlin. 12 degrees, light rain. OK?"
    assert result.text == "Weather in Berlin\n\n12 degrees,\nlight rain\n\nOK?"
    assert TextResult("x").spoken == "No text was found."


def test_the_cursor_moves_by_line_and_paragraph() -> None:
    cursor = TextCursor([["a1", "a2"], ["b1"], ["c1", "c2"]])
    assert cursor.next_line() == "a2"
    assert cursor.next_line() == "b1"
    assert cursor.previous_line() == "a2"
    assert cursor.next_paragraph() == "b1"
    assert cursor.next_paragraph() == "c1 c2"
    assert cursor.next_paragraph() is None
    assert cursor.next_line() == "c2"
    assert cursor.next_line() is None
    assert cursor.previous_paragraph() == "c1 c2"  # first to the start of its own paragraph
    assert cursor.previous_paragraph() == "b1"
    assert cursor.rest() == [(1, "b1."), (2, "c1 c2.")]
    cursor.next_line()
    assert cursor.rest()[0] == (2, "c1 c2.")
    assert cursor.previous_line() == "b1" and cursor.previous_line() == "a2"
    assert cursor.rest()[0] == (0, "a2.")


# --- questions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("question, kind", [
    ("What does it say?", ALL), ("what does the sign say", ALL), ("Read the sign", ALL),
    ("please read it to me", ALL), ("What is written on it?", ALL), ("what's on the screen?", ALL),
    ("Is there any text?", ALL), ("What’s the title?", TITLE), ("what is the heading", TITLE),
    ("Does it say Berlin?", CONTAINS),
])
def test_questions_about_text_go_to_the_text(question: str, kind: str) -> None:
    routed = route(question)
    assert routed is not None and routed.kind == kind


@pytest.mark.parametrize("question", ["is there a dog?", "what colour is the car?",
                                      "how many people are there", "what is the man doing?", "is it raining",
                                      "where is this?"])
def test_other_questions_go_to_the_captioner(question: str) -> None:
    assert route(question) is None


def test_text_questions_are_answered_from_the_text() -> None:
    text = TextResult("x", paragraphs=[["Menu"], ["Weather in Berlin"], ["12 degrees, light rain"]],
                      heights=[11, 24, 12])
    assert answer(route("what's the title?"), text) == "The title seems to be: Weather in Berlin."
    assert answer(route("does it say light rain?"), text) == "Yes: 12 degrees, light rain."
    assert answer(route("does it say snow?"), text).startswith("No,")
    assert answer(route("what does it say"), text) == "Menu. Weather in Berlin. 12 degrees, light rain."
    assert answer(route("what does it say"), TextResult("x")) == "No text was found."


# --- one description of a screen -----------------------------------------------------------------

def test_where_names_the_app_and_the_window() -> None:
    assert where("firefox", "Weather - Berlin") == "Firefox, 'Weather - Berlin'."
    assert where("firefox", "Weather - Berlin - Firefox") == "'Weather - Berlin - Firefox'."
    assert where(None, "Untitled") == "'Untitled'."
    assert where(None, None) == ""


def test_the_text_is_quoted_briefly_or_in_detail() -> None:
    lines = [[f"Line {i} " * 8] for i in range(9)]
    long = TextResult("x", paragraphs=[["Berlin, 12 degrees, light rain"], *lines])
    brief, detailed = quote(long, "brief"), quote(long, "detailed")
    assert brief.startswith("Text: 'Berlin, 12 degrees, light rain; Line 0") and brief.endswith("'…")
    assert len(brief) <= 140 < len(detailed) <= 620
    assert quote(TextResult("x", paragraphs=[["Berlin"]])) == "Text: 'Berlin'."
    assert quote(TextResult("x")) == ""


# --- real engines on rendered text ---------------------------------------------------------------

EXPECTED = "\n\n".join(join_lines(p) for p in PARAGRAPHS)


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")
def test_tesseract_reads_rendered_screen_text_in_order() -> None:
    result = TextReader("tesseract").read(render(PARAGRAPHS, 14), "rendered")
    assert result.ok and result.engine == "tesseract"
    assert len(result.paragraphs) == len(PARAGRAPHS)
    assert character_accuracy(EXPECTED, "\n\n".join(result.paragraph_texts)) >= 0.97, result.paragraph_texts


@pytest.mark.slow
def test_rapidocr_reads_rendered_screen_text_in_order() -> None:
    result = TextReader("rapidocr").read(render(PARAGRAPHS, 16), "rendered")
    assert result.ok and result.engine == "rapidocr"
    assert character_accuracy(EXPECTED, "\n\n".join(result.paragraph_texts)) >= 0.95, result.paragraph_texts


def test_an_unknown_engine_and_a_bad_image_are_said_in_words(tmp_path: Path) -> None:
    bad = tmp_path / "note.png"
    bad.write_bytes(b"not a png")
    result = TextReader("tesseract").read(str(bad))
    assert not result.ok and "note.png" in result.error
    result = TextReader("nonesuch").read(render([["x"]], 12))
    assert not result.ok and "no OCR engine called 'nonesuch'" in result.error


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")
def test_read_command_prints_json(tmp_path: Path) -> None:
    image = tmp_path / "screen.png"
    render([["Invoice 4821"], ["Total: 12.50 EUR"]], 16).save(image)
    out = subprocess.run([sys.executable, "-m", "assistant", "read", str(image), "--json"],
                         capture_output=True, text=True, timeout=120, check=True)
    row = json.loads(out.stdout)
    assert row["image"] == str(image) and row["engine"] == "tesseract"
    assert row["paragraphs"] == ["Invoice 4821", "Total: 12.50 EUR"]
    assert row["text"] == "Invoice 4821\n\nTotal: 12.50 EUR"
