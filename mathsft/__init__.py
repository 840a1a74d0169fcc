"""mathsft: supervised fine-tuning of language models for math, measured honestly."""

import os

# PyTorch's CPU allocator backs tensors of 2 MB and more with transparent huge pages when this is set before
# its first allocation (it reads it once, so importing mathsft before torch is what makes it apply): far
# fewer page faults for a training step's activations and gradients. Measured on the bf16 parity recipe:
# steps 6-9% faster at no higher peak (fp32: no change above the noise). THP_MEM_ALLOC_ENABLE=0 opts out.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
