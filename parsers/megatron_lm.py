"""NVIDIA Megatron-LM / Megatron-Core iteration logs.

``training_log`` in megatron/training/training.py prints (2024+)::

     [2024-04-06 02:58:18] iteration       29/     100 | consumed samples:         3712 |
     elapsed time per iteration (ms): 5912.1 | throughput per GPU (TFLOP/s/GPU): 220.9 |
     learning rate: 5.800000E-06 | global batch size:   128 | lm loss: 1.867856E+00 |
     load_balancing_loss: 1.023825E+00 | loss scale: 1.0 | grad norm: 1.769 | num zeros: 0.0 |
     number of skipped iterations:   0 | number of nan iterations:   0 |

(one line; 2021 versions have no timestamp and no trailing ``|``), the
``---- arguments ----`` dump, ``using world size: ...`` and ``[Rank 0] (after N
iterations) memory (MB) | ...``. The line shares its ``label: value`` fields with
Megatron-DeepSpeed, so this parser is that one with another name and detection:
a log is Megatron-LM when it prints ``throughput per GPU`` or dumps arguments
without ``deepspeed``, or shows neither fork's telltale.
"""

from __future__ import annotations

from llmbench.parsers.megatron_deepspeed import MegatronDeepSpeedParser


class MegatronLMParser(MegatronDeepSpeedParser):
    name = "megatron_lm"
    framework = "Megatron-LM"
    description = (
        "` [date] iteration N/ M | ... | throughput per GPU (TFLOP/s/GPU): x |`, args dump"
    )
    claims = "lm"
