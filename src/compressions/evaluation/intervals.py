"""Bootstrap confidence intervals over examples, for one run and for the paired difference of two runs on
the same examples (resampling the same example indices for both, so what they share cancels out).

Percentile intervals of the mean, seeded, as pure functions of per-example scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compressions.data.records import read_json
from compressions.errors import ConfigError, DataError

RESAMPLES = 2000


def _resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) example indices drawn with replacement, the same for every array of n scores."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(statistics: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(statistics, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(values: list[float], level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """(low, high) percentile interval of the mean of `values`."""
    if not values:
        raise ValueError("no values to resample")
    data = np.asarray(values, dtype=np.float64)
    return _interval(data[_resamples(len(data), resamples, seed)].mean(axis=1), level)


def retention_ci(
    gist: list[float], pos: list[float], neg: list[float], level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float] | None:
    """Interval of the retention (mean gist - mean neg) / (mean pos - mean neg), the three conditions scored on
    the same examples and resampled together; None when the controls tie in too many resamples to say."""
    g, p, n = (np.asarray(x, dtype=np.float64) for x in (gist, pos, neg))
    if not len(g) == len(p) == len(n) > 0:
        raise ValueError("retention needs the three conditions' scores on the same examples")
    rows = _resamples(len(g), resamples, seed)
    gap = p[rows].mean(axis=1) - n[rows].mean(axis=1)
    if (gap == 0).mean() > (1 - level) / 2:
        return None
    return _interval((g[rows].mean(axis=1) - n[rows].mean(axis=1))[gap != 0] / gap[gap != 0], level)


def compare_runs(a: str | Path, b: str | Path) -> dict[str, dict[str, float]]:
    """F1 and EM of run a minus run b (x100) on the questions both scored (their `scores.json`)."""
    scores = []
    for run in (a, b):
        file = Path(run) / "scores.json"
        if not file.is_file():
            raise ConfigError(f"{run} has no scores.json (a finished `eval squad` run writes it)")
        rows = read_json(file)  # a cut-off or non-JSON file: one error naming it
        try:
            scores.append({row["id"]: {"f1": float(row["f1"]), "exact_match": float(row["exact_match"])} for row in rows})
        except (TypeError, KeyError, ValueError):
            raise DataError(f"{file} is not an `eval squad` scores file (a list of id, f1 and exact_match per question)") from None
    shared = [i for i in scores[0] if i in scores[1]]
    if not shared:
        raise ConfigError(f"{a} and {b} scored no question in common")
    out = {"n": len(shared)}
    for key in ("f1", "exact_match"):
        out[key] = paired_difference([100 * scores[0][i][key] for i in shared], [100 * scores[1][i][key] for i in shared])
    return out


def paired_difference(a: list[float], b: list[float], level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, float]:
    """Mean of a - b over the same examples, its interval, and the share of resamples where a <= b."""
    if len(a) != len(b):
        raise ValueError(f"paired scores need the same examples: {len(a)} vs {len(b)}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    means = diff[_resamples(len(diff), resamples, seed)].mean(axis=1)
    low, high = _interval(means, level)
    return {"mean": float(diff.mean()), "low": low, "high": high, "p_not_above": float((means <= 0).mean())}
