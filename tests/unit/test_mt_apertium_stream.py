"""Apertium's stream format (escaping in, unescaping out) and mode discovery, no processes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edged.mt.apertium import discover_modes, escape, unescape


def test_reserved_characters_are_escaped() -> None:
    assert escape("a [b] ^c$ /d\\ <e> @f #g *h {i}") == (
        "a \\[b\\] \\^c\\$ \\/d\\\\ \\<e\\> \\@f \\#g \\*h \\{i\\}"
    )


def test_blanks_collapse_and_nuls_vanish() -> None:
    assert escape("  uno\n\tdos\0tres  ") == "uno dos tres"
    assert escape(" \n ") == ""


def test_unescape_drops_superblank_brackets_and_escapes() -> None:
    assert unescape("It is \\@home\\[1\\].[]") == "It is @home[1]."
    assert unescape("one[ ]two[]\\\\") == "one two\\"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_unescape_inverts_escape_up_to_blanks(text: str) -> None:
    assert unescape(escape(text)) == " ".join(text.replace("\0", " ").split())


def test_discover_modes(tmp_path: Path) -> None:
    for name in ("spa-eng", "eng-spa", "spa-eng_US", "en-es", "hbs-eng", "eng-hbs", "xx-yy"):
        (tmp_path / f"{name}.mode").write_text("cat\n")
    modes = discover_modes(tmp_path)
    assert modes[("es", "en")] == "spa-eng"  # the 3-letter pair wins over the old en-es
    assert modes[("en", "es")] == "eng-spa"
    assert modes[("hr", "en")] == modes[("sr", "en")] == "hbs-eng"
    assert ("en", "hr") not in modes
    assert set(modes.values()) == {"spa-eng", "eng-spa", "hbs-eng"}
    assert discover_modes(tmp_path / "absent") == {}
