"""The benchmark's outputs: bench.json (every figure, the machine, the settings), bench.md
(the side-by-side table and the per-utterance table), timeline.png (one run against time:
audio, partials, finals, translations, speech) and latency.png (latency distributions),
plus each run's events (events-MODE.jsonl) and synthesized speech (tts-MODE.wav)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edged.bench.manifest import Manifest
from edged.bench.metrics import CER_LANGUAGES
from edged.events import AsrFinal, AsrPartial, MtFinal, MtInterim, TtsEnd, TtsStart

_NONE = "-"  # a figure that was not measured
_COLOURS = {"streaming": "tab:blue", "naive": "tab:orange"}
TIMELINE_S = 120.0


def write_report(
    report: dict[str, Any],
    records: Mapping[str, Any],
    manifest: Manifest,
    audio: Path | None,
    out: Path,
) -> list[Path]:
    """Write every output file into `out`; returns their paths."""
    from edged.audio.wavwrite import write_wav

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    path = out / "bench.json"
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    paths.append(path)
    path = out / "bench.md"
    path.write_text(markdown(report), encoding="utf-8")
    paths.append(path)
    for mode, record in records.items():
        origin = record.arrivals[0] - record.ends[0] / 16000 if record.arrivals else 0.0
        path = out / f"events-{mode}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for rx, event in record.received:
                fh.write(
                    json.dumps(
                        {"rx_s": round(rx - origin, 4), **event.to_dict()}, ensure_ascii=False
                    )
                    + "\n"
                )
        paths.append(path)
        if record.tts_audio:
            gap = np.zeros(int(0.3 * record.tts_rate), np.float32)
            speech = np.concatenate(
                [p for u in sorted(record.tts_audio) for p in (record.tts_audio[u], gap)]
            )
            path = out / f"tts-{mode}.wav"
            write_wav(path, speech, record.tts_rate)
            paths.append(path)
    if records:
        paths.append(plot_timeline(records, manifest, audio, report, out / "timeline.png"))
    if any(run.get("paced") for run in report["runs"].values()):
        paths.append(plot_latency(report, out / "latency.png"))
    if any(len(run.get("rss_mb", [])) > 1 for run in report["runs"].values()):
        paths.append(plot_rss(report, out / "rss.png"))
    return paths


# --- Markdown -------------------------------------------------------------------------------


def machine_line(report: dict[str, Any]) -> str:
    """One line: the machine, threads, engines and the set the figures come from."""
    m, s, st = report["machine"], report["settings"], report["set"]
    asr = s["asr_engine"]
    if s.get("whisper"):
        w = s["whisper"]
        asr += f" ({s['asr_bundle']} {w['compute_type']}, beam {w['beam_size']})"
    else:
        asr += f" ({s['asr_bundle']})"
    memory = f", {m['memory_mb'] / 1024:.1f} GB" if m.get("memory_mb") else ""
    speak = f", speaking {s['speak']}" if s.get("speak") else ", no TTS"
    return (
        f"{m['cpu']} ({m['cores']} cores, {m['arch']}{memory}), {m['os']}, "
        f"Python {m['python']}; threads {s['threads']} (asr {s['asr_threads']}, "
        f"mt {s['mt_threads']}, tts {s['tts_threads']}); asr {asr}; "
        f"targets {', '.join(s['targets'])}{speak}; set {st['name']}: {st['utterances']} "
        f"utterances, {st['duration_s']:.1f} s audio ({st['speech_s']:.1f} s speech)"
    )


def _lat(run: dict[str, Any], key: str) -> str:
    if not run.get("paced", True):
        return "not paced"
    return _summary(run["latency_ms"].get(key))


def _summary(s: dict[str, Any] | None) -> str:
    """p50 / p90 of a summarise() result, and how many are missing."""
    s = s or {}
    if not s.get("n"):
        return _NONE
    missing = f" ({s['missing']} missing)" if s.get("missing") else ""
    return f"{s['median']:.0f} / {s['p90']:.0f}{missing}"


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    return _NONE if value is None else fmt.format(value)


def _rows(report: dict[str, Any]) -> list[tuple[str, list[str]]]:
    runs = list(report["runs"].values())
    targets = report["settings"]["targets"]
    engines = sorted({e for r in runs for e in r.get("mt_latency_by_engine_ms", {})})
    rows: list[tuple[str, list[str]]] = [
        ("onset → first asr.partial, p50 / p90 (ms)", [_lat(r, "first_partial") for r in runs]),
        ("onset → first text (ms)", [_lat(r, "first_text") for r in runs]),
        ("end of speech → asr.final (ms)", [_lat(r, "final") for r in runs]),
    ]
    for engine in engines:
        rows.append(
            (
                f"end of speech → mt.final served by {engine} (ms)",
                [_summary(r.get("mt_latency_by_engine_ms", {}).get(engine)) for r in runs],
            )
        )
    for t in targets:
        rows.append((f"end of speech → mt.final {t} (ms)", [_lat(r, f"mt.{t}") for r in runs]))
    rows.append(("end of speech → first synthesized audio (ms)", [_lat(r, "audio") for r in runs]))
    rows.append(("end of speech → tts.start (ms)", [_lat(r, "tts") for r in runs]))
    rows.append(
        (
            "partials repeating the previous final (utterances)",
            [
                f"{r['repeated_previous_final']['partials']} "
                f"({r['repeated_previous_final']['utterances']})"
                + (
                    f"; {n} said again by the speaker, not counted"
                    if (n := r["repeated_previous_final"].get("genuine_repeats"))
                    else ""
                )
                for r in runs
            ],
        )
    )
    rows.append(
        (
            "finals rejected, by reason",
            [", ".join(f"{k} {v}" for k, v in r["rejected_finals"].items()) or "0" for r in runs],
        )
    )
    rows.append(
        (
            "utterances with no final (of manifest)",
            [f"{len(r['no_final'])} (of {len(r['utterances'])})" for r in runs],
        )
    )
    rows.append(
        (
            "flicker: chars retracted per utterance (rewrites)",
            [
                f"{_num(r['flicker']['chars_per_utterance'], '{:.1f}')} "
                f"({r['flicker']['rewrites']})"
                if r["flicker"]["partials"]
                else _NONE
                for r in runs
            ],
        )
    )
    rows.append(
        (
            "RTF asr / mt / tts",
            [
                " / ".join(
                    _num(r["throughput"]["rtf"].get(k), "{:.3f}") for k in ("asr", "mt", "tts")
                )
                for r in runs
            ],
        )
    )
    rows.append(
        (
            "RTF pipeline (sum of stages)",
            [_num(r["throughput"]["rtf"]["pipeline"], "{:.3f}") for r in runs],
        )
    )
    rows.append(
        (
            "CPU s per audio s (all threads)",
            [_num(r["throughput"]["cpu_per_audio_s"], "{:.3f}") for r in runs],
        )
    )
    rows.append(
        (
            "CPU in silence (% of one core)",
            [
                f"{_num(r['silence']['cpu_percent'], '{:.1f}')} "
                f"(over {r['silence']['wall_s']:.1f} s)"
                if r.get("paced", True)
                else "not paced"
                for r in runs
            ],
        )
    )
    rows.append(
        ("peak RSS during the run (MB)", [_num(r["memory"]["peak_rss_mb"], "{:.0f}") for r in runs])
    )
    rows.append(
        (
            "frames dropped / gated (of frames in)",
            [
                f"{r['frames']['frames_dropped']} / {r['frames']['frames_gated']} "
                f"(of {r['frames']['frames_in']})"
                for r in runs
            ],
        )
    )
    rows.append(
        (
            "drain after the last sample (s)",
            [_num(r["throughput"]["drain_s"], "{:.2f}") for r in runs],
        )
    )
    rows.append(
        (
            "WER / CER",
            [
                f"{_pct(r['quality']['asr']['all'].get('wer'))} / "
                f"{_pct(r['quality']['asr']['all'].get('cer'))}"
                for r in runs
            ],
        )
    )
    rows.append(
        (
            "language ID: finals with the spoken language (turns)",
            [_lid_cell(r["quality"]["language_id"]["all"]) for r in runs],
        )
    )
    for t in targets:
        rows.append((f"chrF / BLEU → {t}", [_mt_cell(r["quality"]["mt"].get(t, {})) for r in runs]))
    rows.append(
        (
            "TTS round trip WER (synthesized speech recognized)",
            [
                f"{_pct(r['quality']['tts_back'].get('wer'))} "
                f"(n={r['quality']['tts_back'].get('n', 0)})"
                for r in runs
            ],
        )
    )
    rows.append(
        (
            "utterances missed / merged / split (of manifest)",
            [
                f"{len(r['segmentation']['missed'])} / "
                f"{sum(len(g) for g in r['segmentation']['merged'])} / "
                f"{len(r['segmentation']['split'])} "
                f"(of {r['segmentation']['manifest_utterances']})"
                for r in runs
            ],
        )
    )
    rows.append(("model load and warm-up (s)", [_num(r["load_s"], "{:.1f}") for r in runs]))
    return rows


def _pct(value: float | None) -> str:
    return _NONE if value is None else f"{100 * value:.1f}%"


def _lid_cell(score: dict[str, Any]) -> str:
    if not score.get("with_final"):
        return _NONE
    return f"{_pct(score['accuracy'])} ({score['correct']} of {score['with_final']})"


def _mt_cell(scores: dict[str, Any]) -> str:
    if not scores.get("n"):
        return _NONE
    engines = ", ".join(scores.get("engines", []))
    return f"{scores['chrf']:.1f} / {scores['bleu']:.1f} ({engines})"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: machine line, side-by-side table, per-utterance table."""
    modes = list(report["runs"])
    lines = [
        "# edged benchmark",
        "",
        f"Machine: {machine_line(report)}.",
        "",
        f"Run {report['created']} with `{report['command']}`.",
        "",
        "| figure | " + " | ".join(modes) + " |",
        "|---|" + "---|" * len(modes),
    ]
    for label, cells in _rows(report):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Latencies are measured from the manifest's speech onset and end, as the "
        "audio reached the pipeline (paced in real time), to the event's arrival; "
        "naive = VAD-cut utterances, each recognised once after it ends, no partials. "
        "WER: digits in a hypothesis are spelled as the reference spells them.",
    ]
    lines += _accuracy_table(report)
    lines += _language_id_table(report)
    lines += _rss_table(report)
    targets = report["settings"]["targets"]
    for mode, run in report["runs"].items():
        lines += [
            "",
            f"## Per utterance ({mode})",
            "",
            "| id | lang | final | WER | first text | final | "
            + " | ".join(f"mt {t}" for t in targets)
            + " | audio | "
            + " | ".join(f"→ {t}" for t in targets)
            + " |",
            "|---|---|---|---|---|---|" + "---|" * (2 * len(targets) + 1),
        ]
        for u in run["utterances"]:
            lat = u["latency_ms"] if run.get("paced", True) else {}
            merged = [g for g in u["group"] if g != u["id"]]
            final = _cell(u["final"]) + (f" (with {', '.join(merged)})" if merged else "")
            offline = report.get("offline", {}).get("texts", {})
            if u["id"] in offline and mode == "streaming":
                final += f" *(offline: {_cell(offline[u['id']])})*"
            cells = [
                u["id"],
                u["language"],
                final,
                _pct(u["wer"]),
                _ms(lat.get("first_text")),
                _ms(lat.get("final")),
                *[_ms(lat.get(f"mt.{t}")) for t in targets],
                _ms(lat.get("tts")),
                *[_cell(u["translations"].get(t, "")) for t in targets],
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _accuracy_table(report: dict[str, Any]) -> list[str]:
    """Per language: the error rate of each run's finals, and of the offline baseline."""
    runs = report["runs"]
    offline = report.get("offline", {}).get("comparison", {})
    languages = [
        "all",
        *sorted(k for k in next(iter(runs.values()))["quality"]["asr"] if k != "all"),
    ]
    head = ["language", "n", *runs]
    if offline:
        head += ["offline (beam 5, 30 s)", "streaming - offline (points)"]
    lines = ["", "## Accuracy per language (WER; ja: CER)", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lang in languages:
        metric = "cer" if lang in CER_LANGUAGES else "wer"
        first = next(iter(runs.values()))["quality"]["asr"].get(lang, {})
        cells = [lang, str(first.get("n", 0))]
        cells += [_pct(r["quality"]["asr"].get(lang, {}).get(metric)) for r in runs.values()]
        if offline:
            row = offline.get(lang, {})
            diff = row.get("difference_points")
            cells += [_pct(row.get("offline")), _NONE if diff is None else f"{diff:+.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _language_id_table(report: dict[str, Any]) -> list[str]:
    """Per spoken language: how many turns' finals had it as `src` (and of short turns)."""
    run = next(iter(report["runs"].values()))
    lid = run["quality"]["language_id"]
    mode = next(iter(report["runs"]))
    lines = ["", f"## Language identification ({mode})", ""]
    lines += [
        "| spoken | turns | with a final | right | accuracy | heard as | short turns right |",
        "|---|---|---|---|---|---|---|",
    ]
    for lang, score in lid.items():
        short = score.get("short")
        short_cell = (
            f"{score['short']['correct']} of {score['short']['with_final']} "
            f"({score['short']['turns']} turns)"
            if short
            else _NONE
        )
        heard = ", ".join(f"{k} {v}" for k, v in score["heard_as"].items()) or _NONE
        lines.append(
            f"| {lang} | {score['turns']} | {score['with_final']} | {score['correct']} | "
            f"{_pct(score['accuracy'])} | {heard} | {short_cell} |"
        )
    return lines


def _rss_table(report: dict[str, Any]) -> list[str]:
    """Resident memory at each minute of each run, when a run lasted more than a minute."""
    runs = {m: r.get("rss_mb", []) for m, r in report["runs"].items()}
    if max((len(v) for v in runs.values()), default=0) < 2:
        return []
    minutes = sorted({row["minute"] for rows in runs.values() for row in rows})
    lines = ["", "## Resident memory at each minute (MB, highest sample in the minute)", ""]
    lines += ["| minute | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for minute in minutes:
        cells = []
        for rows in runs.values():
            hit = next((row["rss_mb"] for row in rows if row["minute"] == minute), None)
            cells.append(_num(hit, "{:.0f}"))
        lines.append(f"| {minute} | " + " | ".join(cells) + " |")
    return lines


def plot_rss(report: dict[str, Any], path: Path) -> Path:
    """Resident memory against time, one line per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for m, (mode, run) in enumerate(report["runs"].items()):
        rows = run.get("rss_mb", [])
        ax.plot(
            [row["minute"] for row in rows],
            [row["rss_mb"] for row in rows],
            marker="o",
            color=_COLOURS.get(mode, f"C{m}"),
            label=mode,
        )
    ax.set_xlabel("minute of the run")
    ax.set_ylabel("RSS (MB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("resident memory (highest sample in each minute)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _ms(value: float | None) -> str:
    return _NONE if value is None else f"{value:.0f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else _NONE


# --- plots ----------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_timeline(
    records: Mapping[str, Any],
    manifest: Manifest,
    audio: Path | None,
    report: dict[str, Any],
    path: Path,
) -> Path:
    """Audio, speech regions, partials, finals, translations and speech against time."""
    plt = _pyplot()
    main_mode = next(iter(records))
    main = records[main_mode]
    origin = main.arrivals[0] - main.ends[0] / 16000
    # a long set (realspeech, a soak) is shown for its first TIMELINE_S seconds only
    duration = min(main.ends[-1] / 16000, TIMELINE_S)
    records = {mode: _until(r, duration) for mode, r in records.items()}
    main = records[main_mode]
    manifest = Manifest(tuple(u for u in manifest.utterances if u.t0 < duration))
    targets = report["settings"]["targets"]
    n_rows = 4 + (len(records) > 1)
    fig, axes = plt.subplots(
        n_rows,
        1,
        figsize=(max(14.0, duration * 0.55), 2.2 * n_rows),
        sharex=True,
        gridspec_kw={"height_ratios": [1.2, 1.6, 1.2, 0.6] + [1.4] * (n_rows - 4)},
    )
    ax = axes[0]
    if audio is not None and audio.is_file():
        from edged.audio.convert import to_pipeline_format
        from edged.audio.wav import read_wav

        samples, rate = read_wav(audio)
        pcm = to_pipeline_format(samples, rate)
        step = 160
        env = np.abs(pcm[: len(pcm) // step * step]).reshape(-1, step).max(axis=1)
        t = np.arange(len(env)) * step / 16000
        ax.fill_between(t, -env, env, color="0.4", lw=0)
    for u in manifest.utterances:
        ax.axvspan(u.t0, u.t1, color="tab:green", alpha=0.2, lw=0)
        ax.text((u.t0 + u.t1) / 2, 1.05, u.id, ha="center", va="bottom", fontsize=7)
    for _, e in main.received:
        if isinstance(e, AsrFinal):
            ax.plot([e.t0, e.t1], [-1.05, -1.05], color="tab:blue", lw=3, solid_capstyle="butt")
    ax.set_ylim(-1.2, 1.35)
    ax.set_yticks([])
    ax.set_ylabel("audio\n(green: speech,\nblue: VAD)", fontsize=8)
    _events_rows(axes[1], axes[2], axes[3], main, origin, targets)
    axes[1].set_title(
        f"{main_mode}: events at arrival time (s since the feed began; dotted: end of speech)",
        fontsize=9,
        loc="left",
    )
    if len(records) > 1:
        other_mode, other = list(records.items())[1]
        other_origin = other.arrivals[0] - other.ends[0] / 16000
        _naive_row(axes[4], other, other_origin, targets)
        axes[4].set_title(f"{other_mode}: finals, translations and speech", fontsize=9, loc="left")
    for a in axes[1:]:
        for u in manifest.utterances:
            a.axvline(u.t1, color="0.6", ls=":", lw=0.8)
    axes[-1].set_xlabel("seconds since the feed began")
    axes[-1].set_xlim(0, duration + 0.5)
    fig.suptitle(machine_line(report), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _until(record: Any, seconds: float) -> Any:
    """The record with only the events received in its first `seconds`."""
    origin = record.arrivals[0] - record.ends[0] / 16000
    kept = [(rx, e) for rx, e in record.received if rx - origin <= seconds]
    return dataclasses.replace(record, received=kept)


def _events_rows(
    asr_ax: Any, mt_ax: Any, tts_ax: Any, record: Any, origin: float, targets: Sequence[str]
) -> None:
    level: dict[int, int] = {}
    for rx, e in record.received:
        x = rx - origin
        if isinstance(e, AsrPartial):
            y = level.get(e.utt, 0) % 4
            level[e.utt] = y + 1
            asr_ax.plot(x, y, "o", ms=3, color="tab:gray")
            asr_ax.text(x, y + 0.15, e.text, fontsize=5, color="0.35", rotation=12)
        elif isinstance(e, AsrFinal):
            asr_ax.plot(x, 4.5, "D", ms=5, color="tab:blue")
            asr_ax.text(x, 4.75, e.text, fontsize=6.5, weight="bold", rotation=12)
        elif isinstance(e, (MtInterim, MtFinal)) and e.tgt in targets:
            y = targets.index(e.tgt)
            final = isinstance(e, MtFinal)
            mt_ax.plot(
                x,
                y,
                "s" if final else "o",
                ms=5 if final else 3,
                color="tab:red" if final else "tab:pink",
                fillstyle="full",
            )
            if final:
                mt_ax.text(x, y + 0.15, e.text, fontsize=6, rotation=12)
            else:
                mt_ax.text(x, y - 0.35, e.text, fontsize=5, color="0.45", rotation=12)
    asr_ax.set_ylim(-0.5, 6.2)
    asr_ax.set_yticks([1.5, 4.5], ["partials", "final"], fontsize=8)
    mt_ax.set_ylim(-0.7, len(targets) - 0.1 + 0.6)
    mt_ax.set_yticks(range(len(targets)), [f"mt {t}" for t in targets], fontsize=8)
    _tts_bars(tts_ax, record, origin, 0)
    tts_ax.set_ylim(-0.6, 0.9)
    tts_ax.set_yticks([0], ["speech"], fontsize=8)


def _tts_bars(ax: Any, record: Any, origin: float, y: float) -> None:
    starts: dict[int, tuple[float, str]] = {}
    for rx, e in record.received:
        if isinstance(e, TtsStart):
            starts[e.utt] = (rx - origin, e.text)
        elif isinstance(e, TtsEnd) and e.utt in starts:
            x, text = starts[e.utt]
            ax.barh(y, e.duration, left=x, height=0.5, color="tab:purple", alpha=0.6)
            ax.text(x, y + 0.3, text, fontsize=5.5, rotation=8)


def _naive_row(ax: Any, record: Any, origin: float, targets: Sequence[str]) -> None:
    for rx, e in record.received:
        x = rx - origin
        if isinstance(e, AsrFinal):
            ax.plot(x, 2 + len(targets), "D", ms=5, color="tab:orange")
            ax.text(x, 2.2 + len(targets), e.text, fontsize=6, rotation=12)
        elif isinstance(e, MtFinal) and e.tgt in targets:
            y = 1 + targets.index(e.tgt)
            ax.plot(x, y, "s", ms=4, color="tab:red")
            ax.text(x, y + 0.2, e.text, fontsize=5.5, rotation=12)
    _tts_bars(ax, record, origin, 0)
    ax.set_ylim(-0.6, 3.6 + len(targets))
    ax.set_yticks(
        [0, *range(1, 1 + len(targets)), 2 + len(targets)],
        ["speech", *[f"mt {t}" for t in targets], "final"],
        fontsize=8,
    )


def plot_latency(report: dict[str, Any], path: Path) -> Path:
    """Per-utterance latencies of each run: boxes with every utterance as a dot."""
    plt = _pyplot()
    targets = report["settings"]["targets"]
    keys = ["first_partial", "final", *[f"mt.{t}" for t in targets], "audio"]
    labels = [
        "onset →\nfirst partial",
        "end →\nasr.final",
        *[f"end →\nmt.final {t}" for t in targets],
        "end →\nfirst audio",
    ]
    modes = list(report["runs"])
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(keys), 4.5))
    width = 0.8 / max(1, len(modes))
    for m, mode in enumerate(modes):
        run = report["runs"][mode]
        colour = _COLOURS.get(mode, f"C{m}")
        for k, key in enumerate(keys):
            values = [u["latency_ms"].get(key) for u in run["utterances"]]
            values = [v for v in values if v is not None]
            if not values:
                continue
            x = k + (m - (len(modes) - 1) / 2) * width
            ax.boxplot(
                [values],
                positions=[x],
                widths=width * 0.8,
                showfliers=False,
                patch_artist=True,
                boxprops={"facecolor": colour, "alpha": 0.3},
                medianprops={"color": colour},
            )
            jitter = np.linspace(-width * 0.25, width * 0.25, len(values))
            ax.scatter(
                x + jitter, values, s=10, color=colour, zorder=3, label=mode if k == 0 else None
            )
    ax.set_xticks(range(len(keys)), labels, fontsize=8)
    ax.set_ylabel("ms")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.grid(axis="y", alpha=0.3)
    if len(modes) > 1:
        ax.legend(fontsize=8)
    ax.set_title(
        "latency per utterance ("
        + report["settings"]["asr_engine"]
        + f", {report['settings']['threads']} threads)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
