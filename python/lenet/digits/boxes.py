"""Boxes (x, y, w, h) and grouping them: shared by the candidate finder (pieces of one broken
digit) and the number builder (digits of one line)."""

from __future__ import annotations

from typing import Callable, Sequence

Box = tuple[int, int, int, int]  # x, y, w, h in pixels


def union(boxes: Sequence[Sequence[int]]) -> Box:
    """The smallest box holding all of ``boxes``."""
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def linked_groups(boxes: Sequence[Sequence[float]], reach: Callable[[Sequence[float]], float],
                  linked: Callable[[Sequence[float], Sequence[float]], bool]) -> list[list[int]]:
    """Indices of ``boxes`` grouped by the transitive closure of ``linked`` (union-find). Pairs
    are found by a sweep in x: a box is compared only with boxes that start at or before its
    ``reach`` (an x coordinate), so a busy camera frame with many blobs stays fast."""
    n = len(boxes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(n), key=lambda i: boxes[i][0])
    for k, i in enumerate(order):
        limit = reach(boxes[i])
        for j in order[k + 1:]:
            if boxes[j][0] > limit:
                break
            if linked(boxes[i], boxes[j]):
                parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())
