"""ONNX Runtime sessions as keypaint opens them (no PyTorch here: the frozen path imports this)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime


def open_session(path: Path, threads: int | None) -> onnxruntime.InferenceSession:
    """A CPU session with every graph optimisation; `threads` None: ONNX Runtime's (the physical cores)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads starve other processes on a shared machine and then wait on them.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if threads == 1 else "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
