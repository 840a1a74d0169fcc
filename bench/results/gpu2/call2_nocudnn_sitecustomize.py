"""The second H200 lease's probe: turn cuDNN SDPA off in every process (``sitecustomize`` on ``PYTHONPATH``).

Run with ``bench/gpu_train.py`` to measure mathsft and TRL with cuDNN attention off (bench/results/gpu.md).
"""

import torch

torch.backends.cuda.enable_cudnn_sdp(False)
