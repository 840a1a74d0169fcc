import torch

torch.backends.cuda.enable_cudnn_sdp(False)
