"""`keypaint generate --prompts FILE --ray`: the rows of a prompts file across a Ray cluster (Ray Data).

Each Painter actor loads the model once and paints the rows it is given (one at a time: one GPU, or
`cpus` CPU threads); the driver streams the finished rows back and moves the progress bar. Only the
missing rows are handed out, so a run started again after a stop picks up where it ended.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import ray

from keypaint.cluster.bulk import Row, paint_row


class RowPainter:
    """A Ray Data actor: the model loaded once, then `__call__` per batch of rows."""

    def __init__(self, load: Callable[[], Any], out: str, threads: int | None) -> None:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        self.painter = load()
        self.out = Path(out)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        lines: list[int] = []
        for line, params, names in zip(batch["line"], batch["params"], batch["names"], strict=True):
            paint_row(self.painter, Row(int(line), json.loads(params), tuple(json.loads(names))), self.out)
            lines.append(int(line))
        return {"line": lines}


def paint_on_ray(load: Callable[[], Any], rows: list[Row], out: Path, advance: Callable[[Row], None], *,
                 address: str | None, workers: int | None, gpus: bool | None = None, cpus: int = 1) -> None:
    """Paint `rows` with `workers` actors (default: one per GPU, else one per `cpus` CPUs)."""
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False  # the driver's own bar says it once
    resources = ray.cluster_resources()
    gpus = bool(resources.get("GPU", 0)) if gpus is None else gpus
    workers = workers or (int(resources.get("GPU", 0)) if gpus else max(1, int(resources["CPU"]) // cpus))
    by_line = {row.line: row for row in rows}
    # JSON text columns: Arrow need not guess a type for each parameter
    items = [{"line": row.line, "params": json.dumps(row.params), "names": json.dumps(row.names)}
             for row in rows]
    workers = min(workers, len(items))
    painted = ray.data.from_items(items, override_num_blocks=min(len(items), 1000)).map_batches(
        RowPainter, fn_constructor_kwargs={"load": load, "out": str(out), "threads": None if gpus else cpus},
        batch_size=1, concurrency=workers, **({"num_gpus": 1} if gpus else {"num_cpus": cpus}),
    )
    for done in painted.iter_rows():
        advance(by_line[int(done["line"])])
