"""PNG charts for ``/stats``, sized and lettered to be read on a phone.

matplotlib with the Agg backend (no display). Each chart carries its series in the PNG's
``Description`` text chunk as JSON, so a test (or a curious coordinator) can check what was
drawn without reading pixels.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure

PHONE_SIZE = (6.0, 7.5)  # inches: portrait, like a phone screen
DPI = 160
COLOR = "#1f6f8b"
FONT = 13


def _png(figure: Figure, title: str, series: Sequence[tuple[str, int]]) -> bytes:
    buffer = io.BytesIO()
    description = json.dumps({"title": title, "series": [[k, v] for k, v in series]})
    figure.savefig(
        buffer,
        format="png",
        dpi=DPI,
        bbox_inches="tight",
        metadata={"Title": title, "Description": description},
    )
    return buffer.getvalue()


def bar_chart(title: str, series: Sequence[tuple[str, int]]) -> bytes:
    """Horizontal bars, largest first: labels stay readable however long they are."""
    ordered = sorted(series, key=lambda item: (-item[1], item[0]))
    figure = Figure(figsize=PHONE_SIZE)
    axes = figure.subplots()
    labels = [label for label, _ in ordered][::-1]
    values = [value for _, value in ordered][::-1]
    bars = axes.barh(labels, values, color=COLOR)
    axes.bar_label(bars, padding=3, fontsize=FONT)
    axes.set_title(title, fontsize=FONT + 3, loc="left")
    axes.tick_params(labelsize=FONT)
    axes.spines[["top", "right"]].set_visible(False)
    axes.margins(x=0.15)
    return _png(figure, title, ordered)


def time_chart(title: str, series: Sequence[tuple[str, int]]) -> bytes:
    """Contacts per day, week or month, in time order."""
    figure = Figure(figsize=(PHONE_SIZE[0], PHONE_SIZE[0] * 0.8))
    axes = figure.subplots()
    labels = [label for label, _ in series]
    values = [value for _, value in series]
    axes.bar(range(len(values)), values, color=COLOR)
    step = max(1, len(labels) // 8)
    axes.set_xticks(range(0, len(labels), step), labels[::step], rotation=45, ha="right")
    axes.set_title(title, fontsize=FONT + 3, loc="left")
    axes.tick_params(labelsize=FONT - 1)
    axes.spines[["top", "right"]].set_visible(False)
    return _png(figure, title, list(series))


def read_series(png: bytes) -> dict[str, object]:
    """The title and series a chart was drawn from (its PNG text chunk)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        text = image.info.get("Description", "{}")
    data: dict[str, object] = json.loads(text)
    return data
