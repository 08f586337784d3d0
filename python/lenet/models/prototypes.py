"""The RBF output layer's fixed prototypes: stylized 7×12 digit bitmaps (LeCun et al. 1998, §II-B).

Each class is drawn on a 7-wide, 12-tall grid; ink is +1 and background −1, so every prototype is
an 84-vector of ±1 that the F6 outputs (scaled tanh, range ±1.7159) can actually reach. The paper
chose bitmaps rather than random codes so that confusable characters (1 and 7, 3 and 8) get
similar prototypes and the distances stay meaningful for rejection.
"""

from __future__ import annotations

import numpy as np

WIDTH, HEIGHT = 7, 12

_BITMAPS = {
    0: """
        .......
        ..###..
        .#...#.
        #.....#
        #.....#
        #.....#
        #.....#
        #.....#
        #.....#
        .#...#.
        ..###..
        .......""",
    1: """
        .......
        ...#...
        ..##...
        .#.#...
        ...#...
        ...#...
        ...#...
        ...#...
        ...#...
        ...#...
        .#####.
        .......""",
    2: """
        .......
        ..###..
        .#...#.
        #.....#
        ......#
        .....#.
        ....#..
        ...#...
        ..#....
        .#.....
        #######
        .......""",
    3: """
        .......
        .#####.
        #.....#
        ......#
        ......#
        ..####.
        ......#
        ......#
        ......#
        #.....#
        .#####.
        .......""",
    4: """
        .......
        .....#.
        ....##.
        ...#.#.
        ..#..#.
        .#...#.
        #....#.
        #######
        .....#.
        .....#.
        .....#.
        .......""",
    5: """
        .......
        #######
        #......
        #......
        #......
        ######.
        ......#
        ......#
        ......#
        #.....#
        .#####.
        .......""",
    6: """
        .......
        ..####.
        .#.....
        #......
        #......
        ######.
        #.....#
        #.....#
        #.....#
        #.....#
        .#####.
        .......""",
    7: """
        .......
        #######
        ......#
        .....#.
        ....#..
        ...#...
        ...#...
        ..#....
        ..#....
        ..#....
        ..#....
        .......""",
    8: """
        .......
        .#####.
        #.....#
        #.....#
        #.....#
        .#####.
        #.....#
        #.....#
        #.....#
        #.....#
        .#####.
        .......""",
    9: """
        .......
        .#####.
        #.....#
        #.....#
        #.....#
        #.....#
        .######
        ......#
        ......#
        .....#.
        .####..
        .......""",
}


def digit_bitmap(digit: int) -> np.ndarray:
    """The 12×7 bitmap of one digit as a ±1 float array."""
    rows = [r.strip() for r in _BITMAPS[digit].strip().splitlines()]
    assert len(rows) == HEIGHT and all(len(r) == WIDTH for r in rows), digit
    return np.array([[1.0 if c == "#" else -1.0 for c in r] for r in rows], dtype=np.float32)


def rbf_prototypes() -> np.ndarray:
    """[10, 84] float32: row i is the flattened bitmap of digit i."""
    return np.stack([digit_bitmap(d).reshape(-1) for d in range(10)])
