"""chrF of Whisper's speech->English against Apertium text routes, on real speech.

Decides how the router ranks `whisper` (issue 11, edged/mt/router.py): for each clip of
tools/benchset/references_en.tsv, Whisper base (edged's WhisperRecognizer, language forced
to the clip's, so identification errors do not blur the comparison) gives the transcript
and, with the translate task, its own English; Apertium then translates the transcript
along the route edged's router picks without Whisper (fr->es->en, es->en, it->es->en,
pt->es->en). Apertium on the reference transcript is shown too: the route as it would be
without recognition errors. Scores are sacrebleu's corpus chrF per source language.
Measured 2026-12-02 (Whisper base int8, 11 clips): Whisper wins where Apertium needs a pivot
(fr 42.3 vs 34.7, it 41.6 vs 30.7, pt 64.2 vs 48.3) and ties on the direct es->en (46.9 vs
47.3), hence: fewest hops first, and `whisper` after `apertium` in the default order.

    .venv/bin/python tools/mt_pivot_chrf.py [--data /work/shared/data] [--models DIR]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import sacrebleu

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edged import store  # noqa: E402
from edged.asr.whisper import WhisperOptions, WhisperRecognizer  # noqa: E402
from edged.audio.convert import to_pipeline_format  # noqa: E402
from edged.audio.wav import read_wav  # noqa: E402
from edged.mt.apertium import ApertiumTranslator  # noqa: E402
from edged.mt.router import Router  # noqa: E402

REFERENCES = ROOT / "tools" / "benchset" / "references_en.tsv"


def read_references(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line[:1] != "#"]
    return list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--models", type=Path, default=store.default_models_dir())
    args = parser.parse_args()
    rows = read_references(REFERENCES)
    whisper_dir = args.models / "whisper-base"
    apertium = ApertiumTranslator(timeout=30.0)
    router = Router({"apertium": apertium}, ["apertium"])
    by_lang: dict[str, dict[str, list[str]]] = {}
    recognizers: dict[str, WhisperRecognizer] = {}
    print("| clip | lang | Whisper transcript | Whisper en | Apertium route | Apertium en |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        lang = row["language"]
        if lang not in recognizers:
            # partials off: only the final's decode and translate passes are measured
            recognizer = WhisperRecognizer(whisper_dir, (lang,), WhisperOptions(partials=False))
            recognizer.speech_translation = frozenset({lang})
            recognizers[lang] = recognizer
        recognizer = recognizers[lang]
        samples, rate = read_wav(args.data / row["file"])
        recognizer.begin(0.0)
        recognizer.accept(to_pipeline_format(samples, rate))
        finals = recognizer.end()
        transcript = finals[0].text if finals else ""
        whisper_en = (finals[0].translation_en or "") if finals else ""
        plan = router.plan(lang, "en", whisper=False)
        apertium_en = plan.translate(transcript).text
        apertium_ref = plan.translate(row["transcript"]).text
        scores = by_lang.setdefault(lang, {"ref": [], "whisper": [], "ap": [], "ap_ref": []})
        scores["ref"].append(row["english"])
        scores["whisper"].append(whisper_en)
        scores["ap"].append(apertium_en)
        scores["ap_ref"].append(apertium_ref)
        route = ">".join([plan.src, *(hop.tgt for hop in plan.hops)])
        print(
            f"| {Path(row['file']).name} | {lang} | {transcript} | {whisper_en} | "
            f"{route} | {apertium_en} |"
        )
    apertium.close()
    print()
    print(
        "| source | clips | Whisper speech->en | Apertium on Whisper transcript | "
        "Apertium on reference transcript |"
    )
    print("|---|---|---|---|---|")
    totals: dict[str, list[str]] = {"ref": [], "whisper": [], "ap": [], "ap_ref": []}
    for lang, scores in by_lang.items():
        for key, values in scores.items():
            totals[key].extend(values)
        print(_row(lang, scores))
    print(_row("all", totals))
    return 0


def _row(label: str, scores: dict[str, list[str]]) -> str:
    refs = [scores["ref"]]

    def chrf(key: str) -> str:
        return f"{sacrebleu.corpus_chrf(scores[key], refs).score:.1f}"

    return (
        f"| {label} | {len(scores['ref'])} | {chrf('whisper')} | {chrf('ap')} | {chrf('ap_ref')} |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
