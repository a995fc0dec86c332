"""edged: offline speech translation for small boards."""

__version__ = "0.1.0"
