"""GPT-NeoX iteration logs (EleutherAI/gpt-neox, megatron/logging.py ``training_log``)::

     samples/sec: 7.799 | iteration       34/   10000 | elapsed time per iteration (ms): 4103.1 |
     learning rate: 2.111E-06 | approx flops per GPU: 112.9TFLOPS | lm_loss: 1.118665E+01 |
     number of skipped iterations:   0 | number of nan iterations:   0 |

(one line, rank 0). ``approx flops per GPU`` is ``human_readable_flops``: ``"%3.1f%s"``
with the unit glued on (``112.9TFLOPS``, ``5.7TFLOPS``, ``980.2GFLOPS``), stored in
TFLOP/s; since 2024-12 `` MFU: 40.12% | HFU: 52.30% |`` may follow. The fields share
the Megatron ``label: value |`` shape, so this parser is Megatron-DeepSpeed's with
another name and detection: a log is GPT-NeoX when it prints ``approx flops per GPU``
or ``lm_loss``. Validation: `` validation results at iteration N | lm_loss value: ...``.
"""

from __future__ import annotations

from llmbench.parsers.megatron_deepspeed import MegatronDeepSpeedParser


class GPTNeoXParser(MegatronDeepSpeedParser):
    name = "gpt_neox"
    framework = "GPT-NeoX"
    description = "` samples/sec: S | iteration N/ M | ... | approx flops per GPU: 112.9TFLOPS |`"
    claims = "neox"
