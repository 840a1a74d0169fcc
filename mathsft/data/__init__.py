"""The data layer: every source -> ``Problem`` / ``SFTExample`` records, plus subsets and checks.

``load_problems`` / ``load_sft_examples`` read a hub dataset or local ``.jsonl``/``.json``/``.parquet``
file or folder through the adapter named by ``dataset`` (see ``sources.ADAPTERS``).
"""

from mathsft.data.contamination import ContaminationReport, check_contamination
from mathsft.data.io import read_jsonl, write_jsonl, write_parquet
from mathsft.data.load import LoadStats, load_problems, load_sft_examples
from mathsft.data.sampling import dedupe, split_validation, subsample
from mathsft.data.schema import Problem, SFTExample
from mathsft.data.sources import ADAPTERS, get_adapter, last_boxed
from mathsft.data.synthetic import synthetic_problems

__all__ = [
    "ADAPTERS",
    "ContaminationReport",
    "LoadStats",
    "Problem",
    "SFTExample",
    "check_contamination",
    "dedupe",
    "get_adapter",
    "last_boxed",
    "load_problems",
    "load_sft_examples",
    "read_jsonl",
    "split_validation",
    "subsample",
    "synthetic_problems",
    "write_jsonl",
    "write_parquet",
]
