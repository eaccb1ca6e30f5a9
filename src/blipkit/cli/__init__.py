"""The ``blipkit`` command line."""
