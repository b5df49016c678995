"""Accumulating pressure downstream along a river network (pure Python)."""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Mapping

log = logging.getLogger("gis_server.risk")


def accumulate_downstream(local: Mapping[str, float],
                          downstream: Mapping[str, str | None],
                          attenuation: float = 1.0) -> tuple[dict[str, float],
                                                             list[str]]:
    """Pressure of every segment plus what flows in from upstream.

    A topological pass (Kahn's algorithm) over the segment graph: each segment
    passes ``attenuation`` times its accumulated pressure to the segment named
    by its downstream code. Confluences add up; a downstream code that names
    no segment ends the path. Segments on a cycle (bad data) keep what reached
    them before the cycle and are returned as the second value.

    Parameters
    ----------
    local : mapping of segment code to its own (local) pressure
    downstream : mapping of segment code to the code downstream (or None)
    attenuation : share passed downstream, in [0, 1]

    Returns
    -------
    (accumulated pressure by code, codes left on cycles)

    Examples
    --------
    >>> acc, cyc = accumulate_downstream({"a": 1.0, "b": 0.0, "c": 2.0},
    ...                                  {"a": "b", "b": "c", "c": None})
    >>> sorted(acc.items()), cyc
    ([('a', 1.0), ('b', 1.0), ('c', 3.0)], [])
    """
    nodes = set(local) | {c for c in downstream if c is not None}
    acc = {c: float(local.get(c, 0.0)) for c in nodes}
    indegree: dict[str, int] = defaultdict(int)
    for code in nodes:
        down = downstream.get(code)
        if down is not None and down in nodes and down != code:
            indegree[down] += 1
    queue = deque(sorted(c for c in nodes if indegree[c] == 0))
    done = 0
    while queue:
        code = queue.popleft()
        done += 1
        down = downstream.get(code)
        if down is None or down not in nodes or down == code:
            continue
        acc[down] += attenuation * acc[code]
        indegree[down] -= 1
        if indegree[down] == 0:
            queue.append(down)
    cycles = sorted(c for c in nodes if indegree[c] > 0)
    if cycles:
        log.warning("river network has cycles", extra={"segments": cycles[:20],
                                                       "count": len(cycles)})
    return acc, cycles
