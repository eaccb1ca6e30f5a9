"""Reading the text on an image (OCR): engines behind one interface, paragraphs in reading order,
questions about the text, and a screen's one description. Qt-free.

    reader = TextReader()                 # "auto": Tesseract where installed, else RapidOCR
    result = reader.read(image, "screen")
    speak(result.spoken)                  # paragraphs as sentences; "No text was found." when empty
"""

from assistant.ocr.engine import ENGINE_NAMES, Line, OcrEngine, OcrError, pick_engine
from assistant.ocr.reader import TextReader
from assistant.ocr.result import NO_TEXT, TextResult

__all__ = ["ENGINE_NAMES", "NO_TEXT", "Line", "OcrEngine", "OcrError", "TextReader", "TextResult",
           "pick_engine"]
