"""Personalization: the user's corrected captions, and personal models fine-tuned on them.

Qt-free. ``corrections`` is the store (SQLite, no torch); ``adapters``, ``trainer`` and ``versions`` need
torch and load only when a personal model is trained or applied.
"""
