"""Writing a comparison report three ways: `report.json` (everything, with the protocol manifest),
`report.md` (tables), and a self-contained `report.html` (inline SVG plots of metrics per
checkpoint with intervals and the memorization histogram, and audio players with embedded audio)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from evaluation.audio_io import load_clip
from evaluation.memorization import aligned_spectrograms, memorization_row

PLAYER_RATE_HZ = 22050
PLAYER_SECONDS = 10.0


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _interval(result: dict | None) -> str:
    """`value [low, high]` of a bootstrap result, or n/a when the metric was not computed."""
    if not result:
        return "n/a"
    return f"{_fmt(result['value'])} [{_fmt(result['ci_low'])}, {_fmt(result['ci_high'])}]"


def _test(result: dict | None) -> str:
    """`difference [low, high] | p` cells of a paired test, or n/a cells."""
    if not result:
        return "n/a | n/a"
    return (
        f"{_fmt(result['difference'])} [{_fmt(result['ci_low'])}, {_fmt(result['ci_high'])}] | "
        f"{result['p_value']:.3f}"
    )


def audio_data_uri(path: str | Path) -> str:
    """The clip (first 10 s, mono, 22.05 kHz) as an MP3 data URI (WAV when MP3 encoding is unavailable)."""
    waveform, rate = load_clip(path, PLAYER_RATE_HZ)
    waveform = waveform[: int(PLAYER_SECONDS * rate)]
    buffer = io.BytesIO()
    try:
        sf.write(buffer, waveform, rate, format="MP3")
        mime = "audio/mpeg"
    except (sf.LibsndfileError, TypeError, ValueError):
        buffer = io.BytesIO()
        sf.write(buffer, waveform, rate, format="WAV", subtype="PCM_16")
        mime = "audio/wav"
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def player(path: str | Path, caption: str) -> str:
    try:
        source = audio_data_uri(path)
    except Exception as error:  # noqa: BLE001  (a report must still be written when one clip cannot be read)
        return f"<div class='player'>{html.escape(caption)}: cannot embed ({html.escape(str(error))})</div>"
    return (
        f"<figure class='player'><figcaption>{html.escape(caption)}</figcaption>"
        f"<audio controls preload='none' src='{source}'></audio></figure>"
    )


def svg_interval_chart(
    labels: list[str],
    values: list[float],
    lows: list[float],
    highs: list[float],
    title: str,
    width: int = 640,
    height: int = 260,
    floor: dict | None = None,
) -> str:
    """Points with interval whiskers, one per candidate (x in candidate order / training step);
    `floor` (`value`, `ci_low`, `ci_high` of held-out real clips) is drawn as a grey band and a
    dashed line across the plot."""
    margin_left, margin_bottom, margin_top = 60, 60, 30
    plot_w, plot_h = width - margin_left - 20, height - margin_bottom - margin_top
    band = [floor["ci_low"], floor["ci_high"], floor["value"]] if floor else []
    top = max(highs + values + band) if values else 1.0
    bottom = min(lows + values + band + [0.0])
    span = (top - bottom) or 1.0
    top += 0.05 * span
    span = top - bottom

    def y(v: float) -> float:
        return margin_top + plot_h * (1 - (v - bottom) / span)

    parts = [
        (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
            f"aria-label='{html.escape(title)}'>"
        ),
        f"<text x='{width / 2}' y='18' text-anchor='middle' font-size='14'>{html.escape(title)}</text>",
        f"<line x1='{margin_left}' y1='{margin_top}' x2='{margin_left}' y2='{margin_top + plot_h}' stroke='#333'/>",
        (
            f"<line x1='{margin_left}' y1='{margin_top + plot_h}' x2='{margin_left + plot_w}' "
            f"y2='{margin_top + plot_h}' stroke='#333'/>"
        ),
    ]
    for tick in np.linspace(bottom, top, 5):
        parts.append(
            f"<text x='{margin_left - 6}' y='{y(tick) + 4}' text-anchor='end' font-size='10'>{tick:.3g}</text>"
        )
        parts.append(
            f"<line x1='{margin_left}' y1='{y(tick)}' x2='{margin_left + plot_w}' y2='{y(tick)}' stroke='#eee'/>"
        )
    if floor:
        parts.append(
            f"<rect x='{margin_left}' y='{y(floor['ci_high'])}' width='{plot_w}' "
            f"height='{max(y(floor['ci_low']) - y(floor['ci_high']), 1)}' fill='#999' fill-opacity='0.2'/>"
            f"<line x1='{margin_left}' y1='{y(floor['value'])}' x2='{margin_left + plot_w}' "
            f"y2='{y(floor['value'])}' stroke='#666' stroke-dasharray='5'/>"
            f"<text x='{margin_left + plot_w - 4}' y='{y(floor['value']) - 4}' text-anchor='end' "
            f"font-size='10' fill='#444'>held-out real clips {floor['value']:.3g}</text>"
        )
    step = plot_w / max(len(labels), 1)
    points = []
    for i, (label, value, low, high) in enumerate(zip(labels, values, lows, highs)):
        x = margin_left + step * (i + 0.5)
        points.append(f"{x},{y(value)}")
        parts.append(
            f"<line x1='{x}' y1='{y(low)}' x2='{x}' y2='{y(high)}' stroke='#1f77b4' stroke-width='2'/>"
        )
        parts.append(
            f"<line x1='{x - 6}' y1='{y(low)}' x2='{x + 6}' y2='{y(low)}' stroke='#1f77b4'/>"
            f"<line x1='{x - 6}' y1='{y(high)}' x2='{x + 6}' y2='{y(high)}' stroke='#1f77b4'/>"
        )
        parts.append(
            f"<circle cx='{x}' cy='{y(value)}' r='4' fill='#1f77b4'>"
            f"<title>{html.escape(label)}: {value:.4g} [{low:.4g}, {high:.4g}]</title></circle>"
        )
        parts.append(
            f"<text x='{x}' y='{margin_top + plot_h + 16}' text-anchor='middle' font-size='10'>"
            f"{html.escape(Path(label).name[-18:])}</text>"
        )
    if len(points) > 1:
        parts.append(
            f"<polyline points='{' '.join(points)}' fill='none' stroke='#1f77b4' stroke-opacity='0.4'/>"
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_histogram(
    edges: list[float],
    generated: list[int],
    baseline: list[int],
    threshold: float | None,
    title: str,
    width: int = 640,
    height: int = 240,
) -> str:
    """Two overlaid histograms as shares of each set (generated vs held-out baseline) and the threshold line
    (none for a score that does not decide, `threshold` None)."""
    margin_left, margin_bottom, margin_top = 50, 40, 30
    plot_w, plot_h = width - margin_left - 20, height - margin_bottom - margin_top
    gen = np.asarray(generated, float) / max(sum(generated), 1)
    base = np.asarray(baseline, float) / max(sum(baseline), 1)
    peak = max(gen.max(initial=0), base.max(initial=0)) or 1.0
    lo, hi = edges[0], edges[-1]

    def x(v: float) -> float:
        return margin_left + plot_w * (v - lo) / ((hi - lo) or 1.0)

    parts = [
        (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
            f"aria-label='{html.escape(title)}'>"
        ),
        f"<text x='{width / 2}' y='18' text-anchor='middle' font-size='14'>{html.escape(title)}</text>",
    ]
    for shares, colour in ((base, "#999999"), (gen, "#d62728")):
        for i, share in enumerate(shares):
            bar_h = plot_h * share / peak
            parts.append(
                f"<rect x='{x(edges[i])}' y='{margin_top + plot_h - bar_h}' "
                f"width='{max(x(edges[i + 1]) - x(edges[i]) - 1, 1)}' height='{bar_h}' "
                f"fill='{colour}' fill-opacity='0.55'/>"
            )
    if threshold is not None:
        parts.append(
            f"<line x1='{x(threshold)}' y1='{margin_top}' x2='{x(threshold)}' y2='{margin_top + plot_h}' "
            "stroke='#000' stroke-dasharray='4'/>"
        )
        right_half = x(threshold) > margin_left + plot_w / 2
        parts.append(
            f"<text x='{x(threshold) + (-4 if right_half else 4)}' y='{margin_top + 10}' font-size='10' "
            f"text-anchor='{'end' if right_half else 'start'}'>threshold {threshold:.3f}</text>"
        )
    for tick in np.linspace(lo, hi, 6):
        parts.append(
            f"<text x='{x(tick)}' y='{margin_top + plot_h + 14}' text-anchor='middle' font-size='10'>{tick:.2f}</text>"
        )
    parts.append(
        f"<text x='{margin_left}' y='{height - 6}' font-size='11'><tspan fill='#d62728'>generated</tspan>  "
        "<tspan fill='#777'>held-out baseline</tspan> (share of clips)</text></svg>"
    )
    return "".join(parts)


# headline columns: report metric key, column title, whether larger is better
COLUMNS = (
    ("fad", "FAD [95% CI]", False),
    ("fad_inf", "FAD-inf", False),
    ("kad", "KAD [95% CI]", False),
    ("mad", "MAD [95% CI]", False),
    ("clap_score", "CLAP score [95% CI]", True),
    ("memorization", "memorized share", False),
    ("tempo_hit", "asked tempo hit [95% CI]", True),
    ("key_hit", "asked key hit [95% CI]", True),
)
# Control accuracy (`evaluation.control`): columns shown only when some candidate's prompts ask for it.
CONTROL_COLUMNS = {"tempo_hit": "tempo", "key_hit": "key"}


def _metric_value(entry: dict | None, metric: str) -> tuple[str, float | None]:
    """(cell text, value) of one metric of a scored set; ("n/a", None) when it was not computed."""
    if not entry:
        return "n/a", None
    if metric in ("fad", "kad", "mad"):
        result = entry["distances"].get(metric)
        return _interval(result), result["value"] if result else None
    if metric == "fad_inf":
        result = entry["distances"].get("fad_inf")
        return (_fmt(result["value"]), result["value"]) if result else ("n/a", None)
    if metric in CONTROL_COLUMNS:
        control = (entry.get("control") or {}).get(CONTROL_COLUMNS[metric]) or {}
        if not control.get("clips"):
            return "n/a", None
        return (f"{control['share']:.1%} [{control['ci_low']:.1%}, {control['ci_high']:.1%}] of {control['clips']}",
                control["share"])
    if metric == "clap_score":
        clap = entry.get("clap_score")
        if not clap:
            return "n/a", None
        text = f"{clap['mean']:.3f} [{clap['ci_low']:.3f}, {clap['ci_high']:.3f}]"
        if clap.get("mismatched"):
            m = clap["mismatched"]
            text += f"; mismatched captions {m['mean']:.3f}"
        return text, clap["mean"]
    mem = entry.get("memorization")
    if not mem:
        return "n/a", None
    row = memorization_row(mem)
    return (row["text"], row["share"]) if row else ("n/a", None)


def _against_floor(metric: str, value: float | None, floor_value: float | None) -> str | None:
    """The note that puts a candidate's number next to what held-out real clips score."""
    if value is None or floor_value is None:
        return None
    if metric == "memorization":
        return f"held-out real clips: {floor_value:.1%}"
    if metric == "clap_score":
        return f"held-out real clips: {floor_value:.3f}"
    return f"against a floor of {_fmt(floor_value)}"


def headline_rows(report: dict) -> tuple[list[tuple[str, str]], list[dict]]:
    """The shown columns (key, title) and one row per set (the floor first, then every candidate):
    `label`, `n`, and per column a (number, note) pair; the one source of the Markdown and HTML tables."""
    visibility = report.get("footing", {}).get("visibility", {})
    asked = {key for key, part in CONTROL_COLUMNS.items()
             if any(((entry.get("control") or {}).get(part) or {}).get("clips") for entry in report["candidates"])}
    columns = [(key, title) for key, title, _ in COLUMNS if visibility.get(key, {}).get("shown", True)
               and (key not in CONTROL_COLUMNS or key in asked)]
    floor = report.get("floor")
    floor_values = {key: _metric_value(floor, key)[1] for key, _ in columns}
    rows = []
    if floor:
        rows.append({
            "label": floor["label"],
            "n": floor["set"]["num_clips"],
            "cells": [(_metric_value(floor, key)[0], None) for key, _ in columns],
            "floor": True,
        })
    for entry in report["candidates"]:
        n = entry["set"]["num_clips"]
        if not entry.get("comparable", True):
            reason = entry.get("not_comparable", "")
            cells = [("not comparable", reason)] + [("-", None) for _ in columns[1:]]
            rows.append({"label": entry["label"], "n": n, "cells": cells})
            continue
        cells = []
        for key, _ in columns:
            text, value = _metric_value(entry, key)
            cells.append((text, _against_floor(key, value, floor_values.get(key))))
        rows.append({"label": entry["label"], "n": n, "cells": cells})
    return columns, rows


def memorization_baseline(report: dict) -> str:
    """The sentence giving the share of held-out real clips flagged the same way: the baseline a
    generated set's memorized share is read against."""
    floor = report.get("floor") or {}
    mem = floor.get("memorization")
    if not mem:
        return "No held-out real clips were scored, so there is no baseline share to read this against."
    share = mem["share_above"]["copies"]
    return (
        f"Baseline: {share:.1%} of {floor['set']['num_clips']} held-out real clips (never trained on) are "
        "flagged the same way; a share near it is no sign of memorization."
    )


def footing_lines(report: dict) -> list[str]:
    """Sentences saying how the sets were put on equal footing and which metrics are withheld."""
    footing = report.get("footing")
    if not footing:
        return []
    n = footing["n"]
    lines = [
        f"Every set is scored at N = {n} clips (larger sets: a seeded draw of {n}, seed {footing['seed']}) "
        f"against the same {footing['num_reference']} reference clips"
        + (f", after {n} reference clips were held out and scored like a candidate (the floor)"
           if footing["floor_held_out"] else "")
        + f"; MAD quantises every set into the same {footing['mad_clusters']} clusters (one per 10 clips "
        "of the smaller set). FAD, KAD and MAD depend on N: compare them only with numbers at the same N "
        "and reference."
    ]
    lines += footing.get("notes", [])
    visibility = footing.get("visibility", {})
    unchecked = [metric for metric, seen in visibility.items() if seen["shown"] and seen.get("note")]
    if unchecked:
        lines.append(
            f"Not checked on the quality ladder for this embedder (benchmarks/bench_ladder.py): "
            f"{', '.join(unchecked)}; read them with care."
        )
    lines += [seen["note"] for seen in visibility.values() if not seen["shown"] and seen.get("note")]
    return lines


def markdown_report(report: dict) -> str:
    """Tables of the metrics per candidate next to the real-vs-real floor, paired tests,
    memorization and the manifest."""
    manifest = report["manifest"]
    embedder = manifest["embedder"]
    lines = [
        "# Evaluation report",
        "",
        (
            f"Embedder `{embedder['name']}` version `{embedder['version']}` at {manifest['sample_rate_hz']} Hz; "
            f"reference {manifest['reference']['num_clips']} clips; seed {manifest['seed']}; "
            f"{manifest['n_bootstrap']} bootstrap resamples (95% intervals). Lower is better for FAD, "
            "FAD-inf, KAD, MAD; higher for the CLAP score."
        ),
        "",
    ]
    lines += [f"- {line}" for line in footing_lines(report)]
    columns, rows = headline_rows(report)
    lines += [
        "",
        "| candidate | N | " + " | ".join(title for _, title in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = [text if not note else f"{text} ({note})" for text, note in row["cells"]]
        lines.append(f"| {row['label']} | {row['n']} | " + " | ".join(cells) + " |")
    tested = [key for key in ("fad", "kad", "mad") if key in dict(columns)]
    if report.get("paired_tests") and not tested:
        lines += ["", "No paired tests: FAD, KAD and MAD are all withheld at this N (see above)."]
    if report.get("paired_tests") and tested:
        lines += [
            "",
            "## Paired tests (A - B; lower is better; p: one-sided bootstrap p-value that A is not better)",
            "",
            "| A | B | paired | " + " | ".join(f"{key.upper()} diff [CI] | p" for key in tested) + " |",
            "|---|---|---|" + "---|---|" * len(tested),
        ]
        for test in report["paired_tests"]:
            if test.get("refused"):
                lines.append(f"| {test['a']} | {test['b']} | refused: {test['refused']} |" + " |" * (2 * len(tested)))
                continue
            lines.append(
                f"| {test['a']} | {test['b']} | {test['paired']} | "
                + " | ".join(_test(test.get(key)) for key in tested)
                + " |"
            )
    for entry in report["candidates"]:
        worst = entry["distances"].get("per_clip") or entry["distances"].get("outliers") or []
        if not worst:
            continue
        lines += [
            "",
            f"## Worst clips: {entry['label']}",
            "",
            (
                "Sorted by score = squared Mahalanobis distance to the reference Gaussian; "
                "percentile = share of reference clips that score lower; FAD contribution = FAD "
                "with the clip - FAD without it (unreliable with fewer clips than dimensions)."
            ),
            "",
            "| clip | score | reference percentile | FAD contribution |",
            "|---|---|---|---|",
        ]
        for row in worst[:10]:
            lines.append(
                f"| {row['file']} | {_fmt(row['score'])} | "
                f"{_fmt(row.get('reference_percentile'), 3)} | {_fmt(row.get('fad_contribution'))} |"
            )
    for entry in report["candidates"]:
        mem = entry.get("memorization")
        if not mem:
            continue
        lines += ["", f"## Memorization: {entry['label']}", "", *memorization_markdown(mem), "",
                  memorization_baseline(report)]
    notes = [
        n
        for entry in report["candidates"]
        for n in entry["set"]["notes"] + entry["distances"]["notes"]
    ] + manifest["reference"]["notes"]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in dict.fromkeys(notes)]
    lines += ["", "## Manifest", "", "```json", json.dumps(manifest, indent=2), "```", ""]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; cells are already escaped HTML."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_cell(text: str, note: str | None) -> str:
    """A number with the note that qualifies it directly under it."""
    cell = f"<span class='num'>{html.escape(text)}</span>"
    return cell + (f"<br><small>{html.escape(note)}</small>" if note else "")


def html_headline(report: dict) -> str:
    """The headline table and the paired tests as HTML, from the same rows as the Markdown."""
    columns, rows = headline_rows(report)
    table = _html_table(
        ["candidate", "N"] + [html.escape(title) for _, title in columns],
        [
            [html.escape(row["label"]), str(row["n"])] + [_html_cell(text, note) for text, note in row["cells"]]
            for row in rows
        ],
    )
    parts = [table]
    tests = report.get("paired_tests") or []
    tested = [key for key in ("fad", "kad", "mad") if key in dict(columns)]
    if tests and not tested:
        parts.append("<p>No paired tests: FAD, KAD and MAD are all withheld at this N (see above).</p>")
    if tests and tested:
        body = []
        for test in tests:
            if test.get("refused"):
                body.append([html.escape(test["a"]), html.escape(test["b"]),
                             f"<b>refused</b>: {html.escape(test['refused'])}"] + [""] * len(tested))
                continue
            body.append([html.escape(test["a"]), html.escape(test["b"]), str(test["paired"])] + [
                html.escape(_test(test.get(key))) for key in tested
            ])
        parts.append(
            "<h2>Paired tests</h2><p>A - B, lower is better; p: one-sided bootstrap p-value that A is not "
            "better than B.</p>"
            + _html_table(["A", "B", "paired"] + [f"{key.upper()} diff [CI] | p" for key in tested], body)
        )
    return "".join(parts)


def memorization_markdown(mem: dict) -> list[str]:
    """Lines of one candidate's memorization section: thresholds, the share of copies, and per
    strongest match the training clip, offset and estimated transform."""
    t, share, base = mem["thresholds"], mem["share_above"], mem["baseline"]
    low, high = share["copies_ci95"]
    lines = [
        (
            f"Copies: **{share['copies']:.1%}** [{low:.1%}, {high:.1%}] of {len(mem['per_clip'])} clips "
            f"(copy score > {t['copy_score']:.3f}"
            + (f", melody score > {t['melody_score']:.3f}" if "melody_score" in t
               else " (melody view off: unpitched material)")
            + (f" or residual SNR > {t['residual_snr_db']:.1f} dB" if "residual_snr_db" in t else "")
            + ", set at "
            f"{base['false_positive_rate']:.0%} false positives on {base['name']}, {base['num_clips']} clips; "
            f"held-out clips flagged: {share['baseline_copies']:.1%}). Embedding view, not in the headline: "
            f"{share['embedding_similarity']:.1%} above cosine {t['embedding_similarity']:.4f}."
        ),
        "",
        ("| generated | training clip | copy score | offset (s) | semitones | tempo ratio | gain (dB) "
        "| melody score (training clip) | residual SNR dB (verified clip) | copy? |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in mem["top_matches"]:
        verified = (f"{m['residual_snr_db']:.1f} ({m['verified_train_file']})" if "residual_snr_db" in m else "-")
        lines.append(
            f"| {m['file']} | {m['copy_train_file']} | {m['copy_score']:.3f} | {m['copy_offset_s']:.2f} "
            f"| {m['semitones']:+.0f} | {m['tempo_ratio']:.3f} | {m['gain_db']:+.1f} "
            f"| {m['melody_score']:.3f} ({m['melody_train_file']}) | {verified} "
            f"| {'yes' if m['above_threshold'] else 'no'} |"
        )
    return lines


def image_data_uri(image) -> str:
    """A PIL image as an inline PNG data URI."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def memorization_html(mem: dict, max_players: int) -> str:
    """Share of copies, histograms against the held-out baseline, and for the strongest matches both
    clips' players and their aligned spectrograms side by side."""
    share, t = mem["share_above"], mem["thresholds"]
    low, high = share["copies_ci95"]
    parts = [
        (f"<p>Copies of training clips: <b>{share['copies']:.1%}</b> [{low:.1%}, {high:.1%}] of "
        f"{len(mem['per_clip'])} clips (thresholds at {mem['baseline']['false_positive_rate']:.0%} false "
        f"positives on {html.escape(mem['baseline']['name'])}; embedding view, not in the headline: "
        f"{share['embedding_similarity']:.1%}).</p>")
    ]
    for key, name in (("copy_score", "copy score"), ("melody_score", "melody score"),
                      ("residual_snr_db", "verified residual SNR (dB)"),
                      ("embedding_similarity", "embedding similarity"), ("landmark_score", "landmark score")):
        h = mem["histograms"].get(key)
        if h:
            parts.append(svg_histogram(h["edges"], h["generated"], h["baseline"], t.get(key),
                                       f"Memorization: {name} to nearest training clip"
                                       + ("" if key in t else " (context: does not decide)")))
    parts.append("<h3>Strongest matches: generated clip, training clip, aligned spectrograms "
                 "(left generated, right training clip at the estimated offset and transform)</h3>")
    for m in mem["top_matches"][:max_players]:
        caption = (
            f"train {m['copy_train_file']}: copy score {m['copy_score']:.3f}, offset {m['copy_offset_s']:.2f} s, "
            f"{m['semitones']:+.0f} semitones, tempo x{m['tempo_ratio']:.3f}, gain {m['gain_db']:+.1f} dB; "
            f"melody score {m['melody_score']:.3f}"
            + (f"; residual SNR {m['residual_snr_db']:.1f} dB against {m['verified_train_file']}"
               if "residual_snr_db" in m else "")
            + (f"; landmark score {m['landmark_score']:.1f} at {m['landmark_offset_s']:.2f} s in "
               f"{m['landmark_train_file']}" if "landmark_score" in m else "")
            + f"{' (flagged)' if m['above_threshold'] else ''}"
        )
        try:
            image = f"<img alt='aligned spectrograms' src='{image_data_uri(aligned_spectrograms(m))}'>"
        except (OSError, ValueError) as error:
            image = f"<p>spectrograms unavailable: {html.escape(str(error))}</p>"
        parts.append("<div class='pair'>" + player(m["generated_path"], f"generated {m['file']}")
                     + player(m["train_path"], caption) + image + "</div>")
    return "".join(parts)


def html_report(report: dict, markdown: str, max_players: int = 6) -> str:
    candidates = [c for c in report["candidates"] if c.get("comparable", True)]
    floor = report.get("floor")
    labels = [c["label"] for c in candidates]
    visibility = report.get("footing", {}).get("visibility", {})
    sections = [
        "<ul class='footing'>" + "".join(f"<li>{html.escape(line)}</li>" for line in footing_lines(report)) + "</ul>",
        html_headline(report),
    ]
    charts = []
    for key, title in (
        ("fad", "FAD (lower is better)"),
        ("kad", "KAD (lower is better)"),
        ("mad", "MAD (lower is better)"),
    ):
        if not visibility.get(key, {}).get("shown", True) or not candidates:
            continue
        if not all(c["distances"].get(key) for c in candidates):
            continue
        reference_line = floor["distances"].get(key) if floor else None
        charts.append(
            svg_interval_chart(
                labels,
                [c["distances"][key]["value"] for c in candidates],
                [c["distances"][key]["ci_low"] for c in candidates],
                [c["distances"][key]["ci_high"] for c in candidates],
                title,
                floor=reference_line,
            )
        )
    if candidates and visibility.get("clap_score", {}).get("shown", True) and all(
        c.get("clap_score") for c in candidates
    ):
        real = floor.get("clap_score") if floor else None
        charts.append(
            svg_interval_chart(
                labels,
                [c["clap_score"]["mean"] for c in candidates],
                [c["clap_score"]["ci_low"] for c in candidates],
                [c["clap_score"]["ci_high"] for c in candidates],
                "CLAP score (higher is better)",
                floor={"value": real["mean"], "ci_low": real["ci_low"], "ci_high": real["ci_high"]} if real else None,
            )
        )
    if charts:
        sections.append(
            "<h2>Per candidate, with 95% intervals</h2><p>Grey band and dashed line: held-out real clips "
            "scored the same way at the same N (the floor).</p>" + "".join(charts)
        )
    for entry in report["candidates"]:
        block = [f"<h2>{html.escape(entry['label'])}</h2>"]
        if not entry.get("comparable", True):
            block.append(f"<p class='warn'>Not comparable: {html.escape(entry.get('not_comparable', ''))}</p>")
        block.append("<div class='players'>")
        block += [
            player(path, f"sample {Path(path).name}")
            for path in entry.get("players", [])[:max_players]
        ]
        block.append("</div>")
        worst = entry.get("worst_clips") or []
        if worst:
            block.append(
                "<h3>Worst clips: furthest from the reference set (listen to find what is wrong)</h3>"
                "<div class='players worst'>"
            )
            block += [
                player(
                    row["path"],
                    f"{row['file']}: score {_fmt(row['score'])}, reference percentile "
                    f"{_fmt(row.get('reference_percentile'), 3)}, FAD contribution "
                    f"{_fmt(row.get('fad_contribution'))}",
                )
                for row in worst[:max_players]
            ]
            block.append("</div>")
        mem = entry.get("memorization")
        if mem:
            block.append(memorization_html(mem, max_players))
            block.append(f"<p><b>{html.escape(memorization_baseline(report))}</b></p>")
        sections.append("".join(block))
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "figure.player{display:inline-block;margin:4px;font-size:12px}"
        ".pair{border-left:3px solid #d62728;margin:6px 0;padding-left:6px}"
        "table{border-collapse:collapse;margin:8px 0;font-size:13px}"
        "th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}"
        "td small{color:#555}.num{font-weight:600}.warn{color:#b00}"
        "pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Evaluation report</title>"
        f"<style>{style}</style></head><body>"
        + "<h1>Evaluation report</h1>"
        + "".join(sections)
        + f"<details><summary>All tables (the Markdown report)</summary><pre>{html.escape(markdown)}</pre>"
        "</details></body></html>"
    )


def write_reports(report: dict, out_dir: str | Path, max_players: int = 6) -> dict[str, Path]:
    """Write report.json, report.md and report.html into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "markdown": out_dir / "report.md",
        "html": out_dir / "report.html",
    }
    paths["json"].write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    markdown = markdown_report(report)
    paths["markdown"].write_text(markdown)
    paths["html"].write_text(html_report(report, markdown, max_players))
    return paths
