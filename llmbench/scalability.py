"""Scaling: efficiency of measured runs against the ideal from the smallest, and a
fitted scaling law that predicts throughput at other GPU counts.

Per model, over the runs' tokens/s per GPU ``y(N)`` and ``n = N / N0`` (``N0`` the
smallest GPU count measured):

- Amdahl: ``y = a / (1 + s (n - 1))``;
- Universal Scalability Law (Gunther): ``y = a / (1 + s (n - 1) + k n (n - 1))``.

Both are fitted by least squares (``scipy.optimize.curve_fit``, ``s, k >= 0``); the
law with the smaller residual standard error is used, the simpler on a tie, and a
law needs one point more than its parameters. The prediction interval at ``N`` is
``y(N) ± t(dof) · sqrt(se² + gᵀ C g)`` (residual error plus the parameters'
covariance ``C`` along the gradient ``g``): few points give wide intervals, as they
should. Efficiency is ``y(N) / y(N0)``. Scaling is ``weak`` when the global batch
grows with the GPUs, ``strong`` when it stays.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

from . import series
from .errors import UsageError
from .formats import records
from .plots import DataWarning

MAX_EXTRAPOLATION = 16  # predictions past 16x the largest measured GPU count need force


def amdahl(n, a, s):
    return a / (1 + s * (n - 1))


def usl(n, a, s, k):
    return a / (1 + s * (n - 1) + k * n * (n - 1))


LAWS = {"amdahl": (amdahl, 2), "usl": (usl, 3)}


@dataclass
class Fit:
    law: str
    params: Any
    cov: Any
    se: float
    dof: int
    n0: int

    def predict(self, gpus: float, level: float = 0.95) -> tuple[float, float, float]:
        """(tokens/s per GPU, interval low, high) at ``gpus``."""
        import numpy as np
        from scipy import stats

        f = LAWS[self.law][0]
        n = gpus / self.n0
        y = float(f(n, *self.params))
        grad = np.empty(len(self.params))
        for i, p in enumerate(self.params):
            h = max(abs(p), 1e-6) * 1e-6
            up = np.array(self.params, dtype=float)
            up[i] = p + h
            grad[i] = (f(n, *up) - y) / h
        var = self.se**2 + float(grad @ self.cov @ grad)
        half = float(stats.t.ppf(0.5 + level / 2, self.dof)) * math.sqrt(max(var, 0.0))
        return y, y - half, y + half


def gpu_counts(text: str, option: str = "--predict") -> tuple[int, ...]:
    """GPU counts from ``N[,N...]``; UsageError naming ``option`` for anything else."""
    try:
        counts = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a list of GPU counts") from None
    if any(n < 1 for n in counts):
        raise UsageError(f"{option}: {text!r}: a GPU count is 1 or more")
    return counts


def fit(gpus: list[float], per_gpu: list[float]) -> Fit:
    """The better-fitting law for ``per_gpu`` tokens/s at ``gpus`` (see the module)."""
    import numpy as np
    from scipy.optimize import curve_fit

    n0 = min(gpus)
    n = np.asarray(gpus, dtype=float) / n0
    y = np.asarray(per_gpu, dtype=float)
    best: Fit | None = None
    for law, (f, k) in LAWS.items():
        dof = len(y) - k
        if dof < 1:
            continue
        p0 = [float(y[np.argmin(n)]), 0.01] + ([1e-4] if k == 3 else [])
        bounds = ([0, 0] + ([0] if k == 3 else []), [np.inf] * k)
        try:
            params, cov = curve_fit(f, n, y, p0=p0, bounds=bounds, maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        resid = y - f(n, *params)
        se = float(math.sqrt(float(resid @ resid) / dof))
        cov = np.where(np.isfinite(cov), cov, 0.0)
        if best is None or se < best.se * 0.999:
            best = Fit(law, params, cov, se, dof, int(n0))
    if best is None:
        raise UsageError(
            f"{len(y)} GPU count(s) measured: a scaling law needs at least 3",
            remedy="select runs at three or more GPU counts",
        )
    return best


def scaling(
    table,
    predict: tuple[int, ...] = (),
    *,
    force: bool = False,
    level: float = 0.95,
):
    """Per series (a DataFrame; ``series``: one model on one accelerator, in one MLPerf
    round and framework): measured GPU counts with tokens/s per GPU and the efficiency
    against the smallest run, then the ``predict`` counts with the fitted law's tokens/s,
    efficiency and interval. ``table``: ``summarize`` output. Runs of no known model
    join no series (left out with a DataWarning)."""
    import pandas as pd

    rows, fits = [], {}
    data = table[table["tokens_per_s_per_gpu"].notna() & table["num_gpus"].notna()]
    if not len(data):
        raise UsageError("no run has both a GPU count and tokens/s per GPU")
    groups = series.split(records(data))
    for key in [k for k in groups if k[0] is None]:
        lost = groups.pop(key)
        warnings.warn(
            f"{len(lost)} run(s) of no known model ({series.describe(key, model=False)}): "
            "left out of scaling (scaling is a model's own; set model)",
            DataWarning,
            stacklevel=2,
        )
    if not groups:
        raise UsageError(
            "no run with a GPU count and tokens/s names its model or prints its shape",
            remedy="set model (ingest --set model=NAME, or report --set)",
        )
    for key, g in groups.items():
        fit_of = _series_rows(key, g, predict, force, level, rows)
        if fit_of is not None:
            fits[key] = fit_of
    out = pd.DataFrame(rows, columns=COLUMNS)
    out.attrs["fits"] = fits  # series key -> Fit: a figure's curve and band (``curves``)
    return out


def _series_rows(key, g: list[dict], predict, force: bool, level: float, rows: list):
    """Append one series' measured rows (and predictions) to ``rows``; its Fit or None."""
    by: dict[float, list[dict]] = {}
    for r in g:
        by.setdefault(float(r["num_gpus"]), []).append(r)
    gpus = sorted(by)
    per_gpu = [_median([r["tokens_per_s_per_gpu"] for r in by[n]]) for n in gpus]
    gbs = [_median([r.get("global_batch_size") for r in by[n]]) for n in gpus]
    base, kind = per_gpu[0], _kind(gbs, gpus)
    for n, y in zip(gpus, per_gpu, strict=True):
        rows.append(_row(key, n, "measured", y, base, None, None, kind, None))
    if not predict:
        return None
    law = fit(gpus, per_gpu)
    top = max(gpus)
    for n in predict:
        if n > MAX_EXTRAPOLATION * top and not force:
            raise UsageError(
                f"{series.describe(key)}: {n} GPUs is past {MAX_EXTRAPOLATION}x the largest "
                f"measured ({int(top)})",
                remedy="measure closer to it, or pass --force",
            )
        y, lo, hi = law.predict(n, level)
        how = "extrapolated" if n > top else ("interpolated" if n > min(gpus) else "predicted")
        rows.append(_row(key, n, how, y, base, lo, hi, kind, law))
    return law


def _median(values: list) -> float | None:
    known = sorted(float(v) for v in values if v is not None and v == v)
    if not known:
        return None
    mid = len(known) // 2
    return known[mid] if len(known) % 2 else (known[mid - 1] + known[mid]) / 2


def curves(out, points: int = 60) -> dict[tuple, tuple]:
    """Per fitted series of a ``scaling`` table (its ``series`` key): (GPU counts,
    tokens/s per GPU, low, high) along the law from the smallest count to the largest
    in the table."""
    import numpy as np

    found = {}
    keys = [series.key_of(r) for r in records(out)]
    for key, law in out.attrs.get("fits", {}).items():
        g = out[[k == key for k in keys]]
        xs = np.geomspace(g["num_gpus"].min(), g["num_gpus"].max(), points)
        ys = np.array([law.predict(float(x)) for x in xs])
        found[key] = (xs, ys[:, 0], ys[:, 1], ys[:, 2])
    return found


COLUMNS = [
    *("model", "accelerator", "round", "framework", "num_gpus", "kind"),
    *("tokens_per_s_per_gpu", "low", "high", "tokens_per_s"),
    *("efficiency", "scaling", "law", "law_params", "law_se"),
]


def law_lines(out) -> list[str]:
    """One line per fitted series of a ``scaling`` table: the law, its parameters and
    residual error, and what low/high are."""
    keyed = {series.key_of(r): r for r in records(out.dropna(subset=["law"]))}
    keys = list(keyed)
    return [
        f"{series.label(k, keys)}: {r['law']} ({r['law_params']}; residual se "
        f"{r['law_se']:.4g} tokens/s per GPU); low/high: 95% prediction interval"
        for k, r in keyed.items()
    ]


def _kind(gbs: list, gpus: list[float]) -> str | None:
    """``weak`` when the global batch grows with the GPUs, ``strong`` when it stays."""
    known = [(b, n) for b, n in zip(gbs, gpus, strict=True) if b is not None and b == b]
    if len(known) < 2:
        return None
    if len({b for b, _ in known}) == 1:
        return "strong"
    return (
        "weak"
        if all(b1 > b0 for (b0, _), (b1, _) in zip(known, known[1:], strict=False))
        else "mixed"
    )


def _row(key, n, how, y, base, lo, hi, kind, law) -> list:
    params = None
    if law is not None:
        names = ("a", "s", "k")[: len(law.params)]
        params = ", ".join(f"{k}={v:.4g}" for k, v in zip(names, law.params, strict=True))
    return [
        *key,
        int(n),
        how,
        float(y),
        lo,
        hi,
        float(y) * float(n),
        float(y) / base if base else None,
        kind,
        law.law if law else None,
        params,
        law.se if law else None,
    ]


@dataclass
class Calibration:
    """A throughput taken from measured runs: ``tokens_per_s_per_gpu``, ``how`` (one
    sentence), the series' ``accelerator`` and ``seq_len`` (None where its runs differ),
    and ``flags`` (``columns.FLAGS`` codes: where the estimate leaves what was measured)."""

    tokens_per_s_per_gpu: float
    how: str
    accelerator: str | None
    seq_len: int | None
    flags: list[str]

    def step_time_s(self, tokens_per_step: float, gpus: int) -> float:
        """The time of a step of ``tokens_per_step`` tokens on ``gpus`` GPUs, in s."""
        return tokens_per_step / (self.tokens_per_s_per_gpu * gpus)


def calibrate(
    table,
    model: str,
    gpus: int,
    *,
    accelerator: str | None = None,
    seq_len: int | None = None,
) -> Calibration:
    """The tokens/s per GPU of ``model`` at ``gpus`` from its measured runs in ``table``
    (one ``series``: the runs on ``accelerator`` where several are measured): what the
    law fitted to them gives there (fewer than three GPU counts: the nearest measured
    figure). Assumes the per-GPU throughput of the measured configurations carries over
    (their batch per GPU, parallelism, precision and sequence length): where the
    estimate leaves them (another accelerator or sequence length, past the largest
    count) the result is flagged. Runs of two accelerators, rounds or frameworks are
    never pooled: UsageError asks for one."""
    runs = table[(table["model"] == model) & table["tokens_per_s_per_gpu"].notna()]
    runs = runs[runs["num_gpus"].notna()]
    if not len(runs):
        raise UsageError(
            f"--calibrate: no selected run of {model} has a GPU count and tokens/s",
            remedy="select runs of that model (see `llmbench report`)",
        )
    key, rows = _one_series(series.split(records(runs)), accelerator)
    seqs = {r.get("seq_len") for r in rows}
    measured_seq = int(next(iter(seqs))) if len(seqs) == 1 and None not in seqs else None
    flags = []
    if accelerator and key[1] and accelerator != key[1]:
        flags.append("other_accelerator")
    if seq_len and measured_seq and seq_len != measured_seq:
        flags.append("other_seq_len")
    y, how = _per_gpu_at(rows, gpus, flags)
    how += f" ({series.describe(key)}, {len(rows)} run(s))"
    return Calibration(y, how, key[1], measured_seq, flags)


def _one_series(groups: dict, accelerator: str | None) -> tuple[tuple, list[dict]]:
    """The one series ``--calibrate`` reads: the only one, or the only one on
    ``accelerator``; UsageError naming them where several remain."""
    if accelerator and len(groups) > 1:
        on = {k: g for k, g in groups.items() if k[1] == accelerator}
        groups = on or groups
    if len(groups) > 1:
        named = "; ".join(f"{series.describe(k)} ({len(g)} run(s))" for k, g in groups.items())
        raise UsageError(
            f"--calibrate: the selected runs are {len(groups)} series, never pooled: {named}",
            remedy="select the runs of one (run ids or a narrower glob), or --accelerator",
        )
    return next(iter(groups.items()))


def _per_gpu_at(rows: list[dict], gpus: int, flags: list[str]) -> tuple[float, str]:
    """(tokens/s per GPU at ``gpus``, how): a fitted law over three or more measured GPU
    counts, else the nearest measured count's median; ``flags`` gains ``extrapolated``
    past the largest count."""
    by: dict[float, list[float]] = {}
    for r in rows:
        by.setdefault(float(r["num_gpus"]), []).append(r["tokens_per_s_per_gpu"])
    counts = sorted(by)
    per_gpu = [_median(by[n]) for n in counts]
    top = counts[-1]
    if gpus > top:
        flags.append("extrapolated")
    if len(counts) < 3 or gpus in by:
        near = min(counts, key=lambda n: abs(math.log(n / gpus)))
        y = per_gpu[counts.index(near)]
        how = f"the measured {y:.6g} tokens/s per GPU of the {int(near)}-GPU run(s)"
    else:
        if gpus > MAX_EXTRAPOLATION * top:
            raise UsageError(
                f"--calibrate: {gpus} GPUs is past {MAX_EXTRAPOLATION}x the largest measured "
                f"({int(top)})"
            )
        law = fit(counts, per_gpu)
        y, lo, hi = law.predict(gpus)
        how = (
            f"{law.law} fitted to {len(counts)} measured GPU counts: {y:.6g} tokens/s per "
            f"GPU (95% interval {lo:.6g} .. {hi:.6g})" + (" extrapolated" if gpus > top else "")
        )
    if not (y or 0) > 0:
        raise UsageError("--calibrate: the selected runs give no positive throughput")
    return y, how
