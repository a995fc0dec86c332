"""Language codes edged accepts, their names, and each engine's spelling of them.

edged's codes are Whisper's: ISO 639-1 where one exists (`en`, `es`), ISO 639-3 where it
does not (`haw`, `yue`, `ast`), and Whisper's own `jw` for Javanese so that a recognised
language code flows unchanged from the recognizer to the translators and the synthesizer.
Apertium names languages with ISO 639-3 codes (`eng`, `spa`; older pairs with ISO 639-1),
NLLB with FLORES-200 codes (`spa_Latn`), M2M-100 with ISO 639-1 in `__es__` tokens.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from edged.errors import ConfigError


@dataclass(frozen=True)
class Language:
    """One language: edged's code, English name, ISO 639-3 code, FLORES-200 code (NLLB)."""

    code: str
    name: str
    iso639_3: str
    flores: str | None


# Whisper's 99 languages first (in Whisper's order), then languages that only translators or
# voices know (Apertium's Aragonese, Asturian, Sardinian; NLLB's Irish, Zulu, ...).
_TABLE: tuple[tuple[str, str, str, str | None], ...] = (
    ("en", "English", "eng", "eng_Latn"),
    ("zh", "Chinese", "zho", "zho_Hans"),
    ("de", "German", "deu", "deu_Latn"),
    ("es", "Spanish", "spa", "spa_Latn"),
    ("ru", "Russian", "rus", "rus_Cyrl"),
    ("ko", "Korean", "kor", "kor_Hang"),
    ("fr", "French", "fra", "fra_Latn"),
    ("ja", "Japanese", "jpn", "jpn_Jpan"),
    ("pt", "Portuguese", "por", "por_Latn"),
    ("tr", "Turkish", "tur", "tur_Latn"),
    ("pl", "Polish", "pol", "pol_Latn"),
    ("ca", "Catalan", "cat", "cat_Latn"),
    ("nl", "Dutch", "nld", "nld_Latn"),
    ("ar", "Arabic", "ara", "arb_Arab"),
    ("sv", "Swedish", "swe", "swe_Latn"),
    ("it", "Italian", "ita", "ita_Latn"),
    ("id", "Indonesian", "ind", "ind_Latn"),
    ("hi", "Hindi", "hin", "hin_Deva"),
    ("fi", "Finnish", "fin", "fin_Latn"),
    ("vi", "Vietnamese", "vie", "vie_Latn"),
    ("he", "Hebrew", "heb", "heb_Hebr"),
    ("uk", "Ukrainian", "ukr", "ukr_Cyrl"),
    ("el", "Greek", "ell", "ell_Grek"),
    ("ms", "Malay", "msa", "zsm_Latn"),
    ("cs", "Czech", "ces", "ces_Latn"),
    ("ro", "Romanian", "ron", "ron_Latn"),
    ("da", "Danish", "dan", "dan_Latn"),
    ("hu", "Hungarian", "hun", "hun_Latn"),
    ("ta", "Tamil", "tam", "tam_Taml"),
    ("no", "Norwegian", "nob", "nob_Latn"),
    ("th", "Thai", "tha", "tha_Thai"),
    ("ur", "Urdu", "urd", "urd_Arab"),
    ("hr", "Croatian", "hrv", "hrv_Latn"),
    ("bg", "Bulgarian", "bul", "bul_Cyrl"),
    ("lt", "Lithuanian", "lit", "lit_Latn"),
    ("la", "Latin", "lat", None),
    ("mi", "Maori", "mri", "mri_Latn"),
    ("ml", "Malayalam", "mal", "mal_Mlym"),
    ("cy", "Welsh", "cym", "cym_Latn"),
    ("sk", "Slovak", "slk", "slk_Latn"),
    ("te", "Telugu", "tel", "tel_Telu"),
    ("fa", "Persian", "fas", "pes_Arab"),
    ("lv", "Latvian", "lav", "lvs_Latn"),
    ("bn", "Bengali", "ben", "ben_Beng"),
    ("sr", "Serbian", "srp", "srp_Cyrl"),
    ("az", "Azerbaijani", "aze", "azj_Latn"),
    ("sl", "Slovenian", "slv", "slv_Latn"),
    ("kn", "Kannada", "kan", "kan_Knda"),
    ("et", "Estonian", "est", "est_Latn"),
    ("mk", "Macedonian", "mkd", "mkd_Cyrl"),
    ("br", "Breton", "bre", None),
    ("eu", "Basque", "eus", "eus_Latn"),
    ("is", "Icelandic", "isl", "isl_Latn"),
    ("hy", "Armenian", "hye", "hye_Armn"),
    ("ne", "Nepali", "nep", "npi_Deva"),
    ("mn", "Mongolian", "mon", "khk_Cyrl"),
    ("bs", "Bosnian", "bos", "bos_Latn"),
    ("kk", "Kazakh", "kaz", "kaz_Cyrl"),
    ("sq", "Albanian", "sqi", "als_Latn"),
    ("sw", "Swahili", "swa", "swh_Latn"),
    ("gl", "Galician", "glg", "glg_Latn"),
    ("mr", "Marathi", "mar", "mar_Deva"),
    ("pa", "Punjabi", "pan", "pan_Guru"),
    ("si", "Sinhala", "sin", "sin_Sinh"),
    ("km", "Khmer", "khm", "khm_Khmr"),
    ("sn", "Shona", "sna", "sna_Latn"),
    ("yo", "Yoruba", "yor", "yor_Latn"),
    ("so", "Somali", "som", "som_Latn"),
    ("af", "Afrikaans", "afr", "afr_Latn"),
    ("oc", "Occitan", "oci", "oci_Latn"),
    ("ka", "Georgian", "kat", "kat_Geor"),
    ("be", "Belarusian", "bel", "bel_Cyrl"),
    ("tg", "Tajik", "tgk", "tgk_Cyrl"),
    ("sd", "Sindhi", "snd", "snd_Arab"),
    ("gu", "Gujarati", "guj", "guj_Gujr"),
    ("am", "Amharic", "amh", "amh_Ethi"),
    ("yi", "Yiddish", "yid", "ydd_Hebr"),
    ("lo", "Lao", "lao", "lao_Laoo"),
    ("uz", "Uzbek", "uzb", "uzn_Latn"),
    ("fo", "Faroese", "fao", "fao_Latn"),
    ("ht", "Haitian Creole", "hat", "hat_Latn"),
    ("ps", "Pashto", "pus", "pbt_Arab"),
    ("tk", "Turkmen", "tuk", "tuk_Latn"),
    ("nn", "Norwegian Nynorsk", "nno", "nno_Latn"),
    ("mt", "Maltese", "mlt", "mlt_Latn"),
    ("sa", "Sanskrit", "san", "san_Deva"),
    ("lb", "Luxembourgish", "ltz", "ltz_Latn"),
    ("my", "Burmese", "mya", "mya_Mymr"),
    ("bo", "Tibetan", "bod", "bod_Tibt"),
    ("tl", "Tagalog", "tgl", "tgl_Latn"),
    ("mg", "Malagasy", "mlg", "plt_Latn"),
    ("as", "Assamese", "asm", "asm_Beng"),
    ("tt", "Tatar", "tat", "tat_Cyrl"),
    ("haw", "Hawaiian", "haw", None),
    ("ln", "Lingala", "lin", "lin_Latn"),
    ("ha", "Hausa", "hau", "hau_Latn"),
    ("ba", "Bashkir", "bak", "bak_Cyrl"),
    ("jw", "Javanese", "jav", "jav_Latn"),
    ("su", "Sundanese", "sun", "sun_Latn"),
    ("yue", "Cantonese", "yue", "yue_Hant"),
    # not recognised by Whisper; translation and speech targets only
    ("eo", "Esperanto", "epo", "epo_Latn"),
    ("ga", "Irish", "gle", "gle_Latn"),
    ("gd", "Scottish Gaelic", "gla", "gla_Latn"),
    ("an", "Aragonese", "arg", None),
    ("ast", "Asturian", "ast", "ast_Latn"),
    ("sc", "Sardinian", "srd", "srd_Latn"),
    ("ky", "Kyrgyz", "kir", "kir_Cyrl"),
    ("ku", "Kurdish (Kurmanji)", "kmr", "kmr_Latn"),
    ("ig", "Igbo", "ibo", "ibo_Latn"),
    ("zu", "Zulu", "zul", "zul_Latn"),
    ("xh", "Xhosa", "xho", "xho_Latn"),
)

LANGUAGES: dict[str, Language] = {row[0]: Language(*row) for row in _TABLE}
"""edged's language codes and what each engine calls them."""

WHISPER_LANGUAGES: frozenset[str] = frozenset(code for code, *_ in _TABLE[:100])
"""The codes Whisper recognises (99 in base/small/medium, plus `yue` from large-v3)."""

ALIASES: dict[str, str] = {
    "jv": "jw",  # ISO 639-1 Javanese; Whisper says jw
    "nb": "no",  # Bokmål: Whisper's Norwegian
    "iw": "he",  # withdrawn ISO 639-1 codes still produced by old locales
    "in": "id",
    "ji": "yi",
    "fil": "tl",
}
"""Other spellings accepted on input and rewritten to edged's code."""

# Apertium pair codes that are not a Language.iso639_3 value; several source codes may map
# to one Apertium analyser (Serbo-Croatian reads Croatian, Serbian and Bosnian alike).
_APERTIUM_SOURCE_EXTRA: dict[str, tuple[str, ...]] = {
    "nor": ("no",),
    "zlm": ("ms",),
    "hbs": ("hr", "sr", "bs"),
}
_APERTIUM_TARGET_EXTRA: dict[str, tuple[str, ...]] = {"nor": ("no",), "zlm": ("ms",)}
_BY_ISO639_3: dict[str, str] = {lang.iso639_3: lang.code for lang in LANGUAGES.values()}

_SHOWN_IN_ERRORS = ("en", "es", "de", "fr", "it", "pt", "ca", "nl", "ru", "zh", "ja", "ar")


def normalize_lang(code: str) -> str | None:
    """edged's code for `code` (any case, surrounding blanks, aliases), or None if unknown."""
    key = code.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in LANGUAGES else None


def validate_lang(code: object, key: str) -> str:
    """Return edged's code for `code`, or raise ConfigError naming the config `key`."""
    found = normalize_lang(code) if isinstance(code, str) else None
    if found is not None:
        return found
    hint = ""
    if isinstance(code, str):
        close = difflib.get_close_matches(code.strip().lower(), list(LANGUAGES), n=3, cutoff=0.5)
        if close:
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)"
    shown = ", ".join(_SHOWN_IN_ERRORS)
    raise ConfigError(
        f"unknown language code {code!r} for {key}; expected one of {shown}, ... "
        f"({len(LANGUAGES)} ISO 639-1 codes, see edged.langs.LANGUAGES){hint}"
    )


def lang_name(code: str) -> str:
    """The English name of an edged language code (the code itself if unknown)."""
    lang = LANGUAGES.get(code)
    return lang.name if lang else code


def to_apertium(code: str) -> str:
    """The ISO 639-3 code Apertium's pair names use for edged's `code`."""
    return LANGUAGES[code].iso639_3


def from_apertium(code: str, *, target: bool = False) -> tuple[str, ...]:
    """edged's codes for one side of an Apertium pair name (`spa`, `es`, `hbs`); () if unknown.

    Serbo-Croatian (`hbs`) analyses Croatian, Serbian and Bosnian text, but as a target its
    output variant is not any one of them, so it maps only on the source side.
    """
    extra = _APERTIUM_TARGET_EXTRA if target else _APERTIUM_SOURCE_EXTRA
    if code in extra:
        return extra[code]
    if code in _BY_ISO639_3:
        return (_BY_ISO639_3[code],)
    found = normalize_lang(code) if len(code) == 2 else None
    return (found,) if found else ()


def to_flores(code: str) -> str | None:
    """The FLORES-200 code NLLB uses for edged's `code` (`spa_Latn`), None if NLLB lacks it."""
    return LANGUAGES[code].flores


def to_m2m100(code: str) -> str:
    """The language token M2M-100 uses for edged's `code` (`__es__`)."""
    iso = "jv" if code == "jw" else code
    return f"__{iso}__"
