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
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

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
    """Per model (a DataFrame): measured GPU counts with tokens/s per GPU and the
    efficiency against the smallest run, then the ``predict`` counts with the fitted
    law's tokens/s, efficiency and interval. ``table``: ``summarize`` output."""
    import pandas as pd

    rows, fits = [], {}
    data = table[table["tokens_per_s_per_gpu"].notna() & table["num_gpus"].notna()]
    if not len(data):
        raise UsageError("no run has both a GPU count and tokens/s per GPU")
    for model, g in data.groupby(data["model"].fillna("(no model)"), sort=False):
        by = g.groupby("num_gpus").agg(
            per_gpu=("tokens_per_s_per_gpu", "median"), gbs=("global_batch_size", "median")
        )
        gpus = [float(x) for x in by.index]
        base = float(by["per_gpu"].iloc[0])
        kind = _kind(by["gbs"].tolist(), gpus)
        for n, r in by.iterrows():
            rows.append(_row(model, n, "measured", r["per_gpu"], base, None, None, kind, None))
        if not predict:
            continue
        law = fit(gpus, list(by["per_gpu"]))
        fits[model] = law
        top = max(gpus)
        for n in predict:
            if n > MAX_EXTRAPOLATION * top and not force:
                raise UsageError(
                    f"{model}: {n} GPUs is past {MAX_EXTRAPOLATION}x the largest measured "
                    f"({int(top)})",
                    remedy="measure closer to it, or pass --force",
                )
            y, lo, hi = law.predict(n, level)
            how = "extrapolated" if n > top else ("interpolated" if n > min(gpus) else "predicted")
            rows.append(_row(model, n, how, y, base, lo, hi, kind, law))
    out = pd.DataFrame(rows, columns=COLUMNS)
    out.attrs["fits"] = fits  # model -> Fit: the curve and band of a figure (``curves``)
    return out


def curves(out, points: int = 60) -> dict[str, tuple]:
    """Per fitted model of a ``scaling`` table: (GPU counts, tokens/s per GPU, low,
    high) along the law from the smallest count to the largest in the table."""
    import numpy as np

    found = {}
    for model, law in out.attrs.get("fits", {}).items():
        g = out[out["model"] == model]
        xs = np.geomspace(g["num_gpus"].min(), g["num_gpus"].max(), points)
        ys = np.array([law.predict(float(x)) for x in xs])
        found[model] = (xs, ys[:, 0], ys[:, 1], ys[:, 2])
    return found


COLUMNS = [
    *("model", "num_gpus", "kind", "tokens_per_s_per_gpu", "low", "high", "tokens_per_s"),
    *("efficiency", "scaling", "law", "law_params", "law_se"),
]


def _kind(gbs: list, gpus: list[float]) -> str | None:
    """``weak`` when the global batch grows with the GPUs, ``strong`` when it stays."""
    known = [(b, n) for b, n in zip(gbs, gpus, strict=True) if b == b and b is not None]
    if len(known) < 2:
        return None
    if len({b for b, _ in known}) == 1:
        return "strong"
    return (
        "weak"
        if all(b1 > b0 for (b0, _), (b1, _) in zip(known, known[1:], strict=False))
        else "mixed"
    )


def _row(model, n, how, y, base, lo, hi, kind, law) -> list:
    params = None
    if law is not None:
        names = ("a", "s", "k")[: len(law.params)]
        params = ", ".join(f"{k}={v:.4g}" for k, v in zip(names, law.params, strict=True))
    return [
        model,
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


def calibrate(table, model: str, gpus: int, tokens_per_step: float) -> tuple[float, str]:
    """(step time in s, how it was found) for ``model`` at ``gpus``: the tokens/s per
    GPU the law fitted to the measured runs of ``model`` in ``table`` gives there
    (one measured count: its own figure), turned into the time of a step of
    ``tokens_per_step`` tokens. Assumes the per-GPU throughput of the measured
    configurations carries over (their batch per GPU, parallelism and precision)."""
    import numpy as np

    runs = table[(table["model"] == model) & table["tokens_per_s_per_gpu"].notna()]
    runs = runs[runs["num_gpus"].notna()]
    if not len(runs):
        raise UsageError(
            f"--calibrate: no selected run of {model} has a GPU count and tokens/s",
            remedy="select runs of that model (see `llmbench report`)",
        )
    by = runs.groupby("num_gpus")["tokens_per_s_per_gpu"].median()
    if len(by) < 3 or gpus in by.index:
        near = by.index[int(np.argmin(np.abs(np.log(by.index.to_numpy(dtype=float) / gpus))))]
        y = float(by[near])
        how = f"the measured {y:.6g} tokens/s per GPU of the {int(near)}-GPU run(s)"
    else:
        top = float(max(by.index))
        if gpus > MAX_EXTRAPOLATION * top:
            raise UsageError(
                f"--calibrate: {gpus} GPUs is past {MAX_EXTRAPOLATION}x the largest measured "
                f"({int(top)})"
            )
        law = fit([float(x) for x in by.index], list(by))
        y, lo, hi = law.predict(gpus)
        how = (
            f"{law.law} fitted to {len(by)} measured GPU counts: {y:.6g} tokens/s per GPU "
            f"(95% interval {lo:.6g} .. {hi:.6g})" + (" extrapolated" if gpus > top else "")
        )
    if not y > 0:
        raise UsageError("--calibrate: the selected runs give no positive throughput")
    return tokens_per_step / (y * gpus), how
