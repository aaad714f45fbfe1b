"""Generate large, realistic, deterministic inputs for the benchmarks (seeded).

    python benchmarks/generate.py OUT_DIR [--size-mb 1024] [--files 20000]

writes
- ``sparse.log``: a Megatron-DeepSpeed job log where ~90 % of the lines are noise
  (NCCL INFO, timers, memory reports, warnings, DeepSpeed engine lines) and 8 ranks
  (srun ``--label`` prefixes) print each iteration line;
- ``dense.log``: only iteration lines (one rank);
- ``mllog.log``: a NeMo-style MLPerf log: ``:::MLLOG`` tracked_stats per step, evals;
- ``round/``: ``--files`` small MLPerf result files in a submission tree, like a round.
The lines have the exact shape of the frameworks' print statements (see the
fixtures); the numbers come from a seeded generator, so a size always gives the
same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import random

from llmbench.mlperf.rules import mllog_line

MB = 1 << 20

ITER = (
    "{p} iteration {i:8d}/  300000 | consumed samples: {s:12d} | consumed tokens: {t:12d} | "
    "elapsed time per iteration (ms): {ms:.1f} | learning rate: {lr:.3E} | "
    "global batch size: {b:5d} | lm loss: {loss:.6E} | loss scale: 1.0 | grad norm: {gn:.3f} | "
    "num zeros: 0.0 | number of skipped iterations:   0 | number of nan iterations:   0 | "
    "samples per second: {sps:.3f} | TFLOPs: {tf:.2f} |"
)
# Megatron prints its memory report once, after the first iteration, on each rank that
# reports (``report_memory`` in training_log): not with every iteration.
MEMORY = (
    "{p} [Rank {r}] (after {i} iterations) memory (MB) | allocated: {a:.10f} | "
    "max allocated: {ma:.10f} | reserved: 67584.0 | max reserved: 67584.0"
)
NOISE = [
    "{p} {host}:{pid}:{pid2} [{r}] NCCL INFO Channel {c:02d}/32 :    {r} {r2} [{c}] -> {r3} [{c}] via P2P/IPC/read",
    "{p} time (ms) | forward-compute: {f:.2f} | backward-compute: {bw:.2f} | backward-params-all-reduce: {ar:.2f} | optimizer: {o:.2f} | batch-generator: {bg:.2f}",
    "{p} [{date} {clock},{ms3:03d}] [INFO] [logging.py:96:log_dist] [Rank {r}] step={i}, skipped=0, lr=[{lr:.6e}], mom=[(0.9, 0.95)]",
    "{p} [{date} {clock},{ms3:03d}] [INFO] [timer.py:215:stop] epoch=0/micro_step={i}/global_step={i}, RunningAvgSamplesPerSec={sps:.6f}, CurrSamplesPerSec={sps2:.6f}, MemAllocated=38.14GB, MaxMemAllocated=57.91GB",
    "{p} /usr/local/lib/python3.10/dist-packages/torch/utils/checkpoint.py:31: UserWarning: None of the inputs have requires_grad=True. Gradients will be None",
    "{p}   warnings.warn(",
    "{p} {host}:{pid}:{pid3} [{r}] NCCL INFO comm 0x{comm:x} rank {r} nranks 512 cudaDev {d} busId {bus:x}0 - Init COMPLETE",
]


def _rng(seed: str) -> random.Random:
    return random.Random(f"llmbench-bench-{seed}")


def megatron(path: str, size: int, *, noise_ratio: float, ranks: int, seed: str) -> int:
    """Write ~``size`` bytes; returns the number of iteration records."""
    rng = _rng(seed)
    written = i = 0
    with open(path, "w", encoding="utf-8") as out:
        header = [
            "using world size: 512, data-parallel-size: 8, tensor-model-parallel size: 8, "
            "pipeline-model-parallel size: 8 ",
            "------------------------ arguments ------------------------",
            "  global_batch_size ............................... 1536",
            "  hidden_size ..................................... 12288",
            "  num_layers ...................................... 96",
            "  num_attention_heads ............................. 96",
            "  seq_length ...................................... 2048",
            "  micro_batch_size ................................ 1",
            "-------------------- end of arguments ---------------------",
        ]
        text = "\n".join(header) + "\n"
        out.write(text)
        written += len(text)
        while written < size:
            i += 1
            lines = []
            n_iter = ranks
            # noise lines so that noise_ratio of all lines are noise
            n_noise = round(n_iter * noise_ratio / (1 - noise_ratio)) if noise_ratio else 0
            vals = dict(
                i=i,
                s=i * 1536,
                t=i * 1536 * 2048,
                ms=rng.uniform(11000, 12500),
                lr=6e-5 * min(1.0, i / 2000),
                b=1536,
                loss=max(1.8, 11.0 - i * 0.001) + rng.uniform(-0.05, 0.05),
                gn=rng.uniform(0.2, 3.0),
                sps=rng.uniform(120, 140),
                tf=rng.uniform(150, 170),
            )
            for r in range(n_iter):
                lines.append(ITER.format(p=f"{r}:" if ranks > 1 else "", **vals))
            for _ in range(n_noise):
                r = rng.randrange(512)
                lines.append(
                    rng.choice(NOISE).format(
                        p=f"{r % 8}:",
                        host=f"node{r // 8:03d}",
                        pid=rng.randrange(1000, 99999),
                        pid2=rng.randrange(1000, 99999),
                        pid3=rng.randrange(1000, 99999),
                        r=r,
                        r2=(r + 1) % 512,
                        r3=(r + 8) % 512,
                        c=rng.randrange(32),
                        i=i,
                        f=rng.uniform(3000, 4000),
                        bw=rng.uniform(7000, 8000),
                        ar=rng.uniform(10, 20),
                        o=rng.uniform(100, 200),
                        bg=rng.uniform(1, 5),
                        date="2024-05-01",
                        clock=f"{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}",
                        ms3=rng.randrange(1000),
                        lr=vals["lr"],
                        sps=vals["sps"],
                        sps2=rng.uniform(120, 140),
                        comm=rng.getrandbits(48),
                        d=r % 8,
                        bus=rng.getrandbits(16),
                    )
                )
            rng.shuffle(lines)
            if i == 1 and noise_ratio:
                for r in range(ranks):
                    a, ma = rng.uniform(30000, 40000), rng.uniform(50000, 60000)
                    lines.append(MEMORY.format(p=f"{r}:", r=r * 64, i=i, a=a, ma=ma))
            text = "\n".join(lines) + "\n"
            out.write(text)
            written += len(text)
    return i


def _mllog(time_ms: int, key: str, value, **meta) -> str:
    return mllog_line(time_ms, key, value, "/workspace/llm/custom_callbacks.py", **meta)


def mllog_file(path: str, size: int, *, seed: str, bench: str = "gpt3", status="success") -> int:
    """A NeMo-style MLPerf log of ~``size`` bytes; returns its tracked_stats count."""
    rng = _rng(seed)
    t = 1727700000000
    n = 0
    with open(path, "w", encoding="utf-8") as out:
        head = [
            _mllog(t, "submission_benchmark", bench),
            _mllog(t, "submission_org", "ACME"),
            _mllog(t, "submission_division", "closed"),
            _mllog(t, "global_batch_size", 2048),
            _mllog(t, "max_sequence_length", 2048),
            _mllog(t + 5000, "run_start", None),
        ]
        text = "\n".join(head) + "\n"
        out.write(text)
        written = len(text)
        t += 5000
        while written < size:
            n += 1
            t += rng.randrange(13000, 14000)
            lines = [
                "[NeMo I 2024-09-30 12:00:00 nemo_logging:349] "
                f"Epoch 0: : {n}it [00:{n % 60:02d}, 0.07it/s, reduced_train_loss={rng.uniform(2, 3):.3f}]",
                _mllog(
                    t,
                    "tracked_stats",
                    {"train_step_timing in s": rng.uniform(13, 14)},
                    step=n * 2048 * 2048,
                ),
            ]
            if n % 24 == 0:
                lines.append(
                    _mllog(t, "eval_accuracy", rng.uniform(2.6, 2.9), epoch_num=n * 4194304)
                )
            text = "\n".join(lines) + "\n"
            out.write(text)
            written += len(text)
        stop = _mllog(t + 1000, "run_stop", None, status=status)
        out.write(stop + "\n")
    return n


def mlperf_round(root: str, files: int, *, seed: str) -> int:
    """``files`` small result files in a submission tree (10 per benchmark folder)."""
    rng = _rng(seed)
    made = 0
    sub = 0
    while made < files:
        org = f"Org{sub // 20:03d}"
        system = f"sys{sub:05d}"
        os.makedirs(f"{root}/{org}/systems", exist_ok=True)
        with open(f"{root}/{org}/systems/{system}.json", "w") as f:
            json.dump(
                {
                    "submitter": org,
                    "division": "closed",
                    "status": "onprem",
                    "system_name": system,
                    "number_of_nodes": str(rng.choice([1, 8, 64])),
                    "accelerators_per_node": "8",
                    "accelerator_model_name": "NVIDIA H100-SXM5-80GB",
                    "framework": "NeMo",
                },
                f,
            )
        folder = f"{root}/{org}/results/{system}/llama2_70b_lora"
        os.makedirs(folder, exist_ok=True)
        for k in range(min(10, files - made)):
            mllog_file(
                f"{folder}/result_{k}.txt", 6000, seed=f"{seed}-{sub}-{k}", bench="llama2_70b_lora"
            )
            made += 1
        sub += 1
    return made


def store(path: str, steps: int, runs: int, *, seed: str) -> int:
    """A store holding ``runs`` Megatron-like runs of ``steps // runs`` steps each
    (written through llmbench's own store API, a part per 100 runs): the input of
    the read benchmark. Returns the step rows written."""
    import numpy as np
    import polars as pl

    from llmbench import parts as partfiles
    from llmbench.columns import RUN_COLUMNS, STEP_COLUMNS, polars_schema
    from llmbench.store import FileRows, Store

    rng = np.random.default_rng(abs(hash(seed)) % 2**32)
    per = steps // runs
    written = 0
    with Store(path) as s:
        for first in range(0, runs, 100):
            items, frames = [], []
            for k in range(first, min(runs, first + 100)):
                run_id = f"{k:012x}"
                src = f"/bench/run{k:05d}.log"
                n_gpus = int(rng.choice([64, 128, 256, 512]))
                run = dict.fromkeys(RUN_COLUMNS)
                run.update(
                    run_id=run_id,
                    source=src,
                    segment=0,
                    parser="megatron_deepspeed",
                    framework="Megatron-DeepSpeed",
                    model="gpt3-175b",
                    num_gpus=n_gpus,
                    global_batch_size=1536,
                    seq_len=2048,
                    accelerator="h100-sxm",
                    dtype="bf16",
                    tp=8,
                    pp=8,
                    dp=n_gpus // 64,
                    n_steps=per,
                    config="{}",
                    provenance="{}",
                )
                frames.append(
                    pl.DataFrame(
                        {
                            "run_id": [run_id] * per,
                            "step": np.arange(1, per + 1),
                            "step_time_s": np.round(rng.uniform(11.0, 12.5, per), 4),
                            "loss": np.round(rng.uniform(2, 9, per), 6),
                            "learning_rate": np.full(per, 6e-5),
                            "global_batch_size": np.full(per, 1536),
                            "consumed_samples": np.arange(1, per + 1) * 1536,
                            "tflops_per_gpu_logged": np.round(rng.uniform(150, 170, per), 2),
                            "line_no": np.arange(1, per + 1) * 10,
                        }
                    )
                )
                items.append((src, run))
            frame = pl.concat(frames)
            frame = frame.select(
                pl.col(c).cast(dt) if c in frame.columns else pl.lit(None, dt).alias(c)
                for c, dt in polars_schema(STEP_COLUMNS).items()
            )
            part = partfiles.write(frame, s.parts_dir, "steps")
            s.replace_files(
                [
                    FileRows({"path": src, "sha256": run["run_id"] * 5}, [run], None, ())
                    for src, run in items[:-1]
                ]
                + [
                    FileRows(
                        {"path": items[-1][0], "sha256": items[-1][1]["run_id"] * 5},
                        [items[-1][1]],
                        None,
                        (part,),
                    )
                ]
            )
            written += frame.height
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--size-mb", type=float, default=1024, help="size of each big log [1024]")
    ap.add_argument("--files", type=int, default=20000, help="small files in the round [20000]")
    ap.add_argument("--round-dir", default="round", help="the round's folder in OUT [round]")
    ap.add_argument(
        "--only",
        default="sparse,dense,mllog,round,store",
        help="which inputs [sparse,dense,mllog,round,store]",
    )
    ap.add_argument("--store-steps", type=int, default=10_000_000, help="step rows in store/ [1e7]")
    ap.add_argument("--store-runs", type=int, default=1000, help="runs in store/ [1000]")
    a = ap.parse_args()
    only = set(a.only.split(","))
    os.makedirs(a.out, exist_ok=True)
    size = int(a.size_mb * MB)
    if "sparse" in only:
        n = megatron(f"{a.out}/sparse.log", size, noise_ratio=0.9, ranks=8, seed="sparse")
        print(f"sparse.log: {n} iterations x 8 ranks, 90 % noise lines")
    if "dense" in only:
        n = megatron(f"{a.out}/dense.log", size, noise_ratio=0.0, ranks=1, seed="dense")
        print(f"dense.log: {n} iteration lines")
    if "mllog" in only:
        n = mllog_file(f"{a.out}/mllog.log", size, seed="mllog")
        print(f"mllog.log: {n} tracked_stats records")
    if "round" in only and a.files:
        n = mlperf_round(f"{a.out}/{a.round_dir}/v9.0", a.files, seed="round")
        print(f"{a.round_dir}/: {n} result files")
    if "store" in only and a.store_steps:
        os.makedirs(f"{a.out}/store", exist_ok=True)
        n = store(f"{a.out}/store/llmbench.db", a.store_steps, a.store_runs, seed="store")
        print(f"store/llmbench.db: {n} step rows in {a.store_runs} runs")


if __name__ == "__main__":
    main()
