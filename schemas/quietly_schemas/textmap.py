"""Text rewritten step by step, remembering where every part came from.

The scrubber detects on a normalized view of the text (``normalize.py``) and puts
placeholders into it, but stores the original with only the findings replaced. A
``Mapped`` text is that view: its ``text``, and segments that tile both the text and
the original in order. A segment is either unchanged (``IDENTITY``: the text's
characters are the original's), rewritten by normalization (the original ``%40``
shown as ``@``; empty for a removed zero-width character), or a placeholder. Every
rewrite keeps the tiling, so a span of the view always maps back to one range of
the original.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import NamedTuple

IDENTITY = 0
REWRITTEN = 1
PLACEHOLDER = 2


class Seg(NamedTuple):
    start: int  # in the view
    end: int
    ostart: int  # in the original
    oend: int
    kind: int
    label: str = ""  # the placeholder's class


class Mapped:
    __slots__ = ("_starts", "original", "segs", "text")

    def __init__(self, original: str, text: str | None = None, segs: list[Seg] | None = None):
        self.original = original
        self.text = original if text is None else text
        self.segs = segs if segs is not None else [Seg(0, len(original), 0, len(original), 0)]
        self._starts = [s.start for s in self.segs]

    def _widen(self, start: int, end: int) -> tuple[int, int]:
        # A span must not cut a rewritten segment or a placeholder in two: it then
        # takes the whole of it (its original cannot be split). Tiling makes the
        # last segment starting at or before a position the one holding it.
        seg = self.segs[bisect_right(self._starts, start) - 1]
        if seg.kind != IDENTITY and seg.start < start:
            start = seg.start
        seg = self.segs[bisect_right(self._starts, end - 1) - 1]
        if seg.kind != IDENTITY and end < seg.end:
            end = seg.end
        return start, end

    def _pieces(self, start: int, end: int, inner: bool) -> Iterable[Seg]:
        """Segments within [start, end) of the view, identity ones clipped. Empty
        segments on the border belong to the outside (``inner`` False), only those
        strictly inside to a span (``inner`` True)."""
        i = bisect_left(self._starts, start)
        if i > 0 and self.segs[i - 1].end > start:
            i -= 1
        for seg in self.segs[i:]:
            if seg.start > end:
                break
            if seg.start == seg.end:
                if (start < seg.start < end) if inner else (start <= seg.start <= end):
                    yield seg
                continue
            if seg.end <= start or seg.start >= end:
                continue
            if seg.kind == IDENTITY:
                a, b = max(seg.start, start), min(seg.end, end)
                yield Seg(a, b, seg.ostart + a - seg.start, seg.ostart + b - seg.start, 0)
            else:
                yield seg

    def rewrite(self, edits: Iterable[tuple[int, int, str]], label: str | None = None) -> Mapped:
        """The view with each ``(start, end, new)`` of it replaced by ``new``: a
        placeholder of class ``label``, or (without one) normalized text. Edits are
        in order and do not overlap; each is widened to whole rewritten segments (a
        rewrite keeps the rest of the segment's text)."""
        spans: list[tuple[int, int, str]] = []
        for start, end, new in edits:
            wstart, wend = self._widen(start, end)
            if label is None:
                # Normalization inside a rewritten segment rewrites all of it.
                new = self.text[wstart:start] + new + self.text[end:wend]
            if spans and wstart < spans[-1][1]:
                # Widening made two edits meet: one placeholder; a second rewrite of
                # the same segment waits for the next round of normalization.
                if label is not None:
                    prev = spans.pop()
                    spans.append((prev[0], max(wend, prev[1]), prev[2]))
                continue
            spans.append((wstart, wend, new))
        if not spans:
            return self
        text: list[str] = []
        segs: list[Seg] = []
        at = 0  # position in the new view
        prev_end = 0
        kind = PLACEHOLDER if label is not None else REWRITTEN
        for start, end, new in spans:
            for seg in self._pieces(prev_end, start, inner=False):
                n = seg.end - seg.start
                segs.append(Seg(at, at + n, seg.ostart, seg.oend, seg.kind, seg.label))
                at += n
            text.append(self.text[prev_end:start])
            inside = list(self._pieces(start, end, inner=True))
            ostart, oend = inside[0].ostart, inside[-1].oend
            segs.append(Seg(at, at + len(new), ostart, oend, kind, label or ""))
            at += len(new)
            text.append(new)
            prev_end = end
        for seg in self._pieces(prev_end, len(self.text), inner=False):
            n = seg.end - seg.start
            segs.append(Seg(at, at + n, seg.ostart, seg.oend, seg.kind, seg.label))
            at += n
        text.append(self.text[prev_end:])
        return Mapped(self.original, "".join(text), segs)

    def findings(self) -> list[tuple[int, int, str]]:
        """The placeholders, as ``(start, end, class)`` ranges of the original."""
        return [(s.ostart, s.oend, s.label) for s in self.segs if s.kind == PLACEHOLDER]


def render(original: str, findings: list[tuple[int, int, str]]) -> tuple[str, list[str]]:
    """``original`` with each finding's range replaced by ``[class]``; findings that
    overlap become one (the first one's class). Returns the text and the classes."""
    out: list[str] = []
    kinds: list[str] = []
    at = 0
    for start, end, kind in sorted(findings, key=lambda f: (f[0], -f[1])):
        if start < at:  # overlaps the previous finding: it grows
            if end > at:
                at = end
            continue
        out += [original[at:start], f"[{kind}]"]
        kinds.append(kind)
        at = end
    out.append(original[at:])
    return "".join(out), kinds
