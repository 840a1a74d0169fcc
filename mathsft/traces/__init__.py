"""Teacher traces: k graded completions per problem, a durable sample log, rejection-sampled SFT data."""

from mathsft.traces.config import TracesConfig
from mathsft.traces.run import build_sft, run_traces

__all__ = ["TracesConfig", "build_sft", "run_traces"]
