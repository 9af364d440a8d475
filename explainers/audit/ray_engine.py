"""The Ray engine: the same chunks as the local engine, run by a pool of Ray Data actors that each
load the model once (one GPU per actor when the cluster has GPUs).

Only the driver writes to the store, as results arrive, so a task that Ray retries after a worker
died cannot write a record twice. Ray is imported here only: nothing else needs it installed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from explainers.audit.work import AuditSettings, explain_items
from explainers.errors import InputError
from explainers.serving.allocator import map_large_blocks, release_free_memory, with_huge_pages

ROOT = Path(__file__).resolve().parents[2]  # the folder holding the explainers package


class _AuditWorker:
    """One Ray actor: loads the model once, then explains the chunks it is given."""

    def __init__(self, settings: dict):
        from explainers.models.loading import load_model

        settings = dict(settings, methods=tuple(settings["methods"]))
        self.settings = AuditSettings(**settings)
        self.handle = load_model(self.settings.model)
        map_large_blocks()  # as the local engine does (see allocator.py)

    def __call__(self, batch: dict) -> dict:
        items = [json.loads(x) for x in batch["item"]]
        for item in items:
            item["rationale"] = tuple(item["rationale"]) if item.get("rationale") else None
        records = explain_items(self.handle, self.settings, items)
        out = {"record": np.array([json.dumps(r, ensure_ascii=False) for r in records], dtype=object)}
        del records
        release_free_memory()  # as the local engine does after each chunk (see engine.py)
        return out


def _connect(address: str | None, workers: int | None) -> bool:
    """Start or join Ray; True when this run started it (and so stops it)."""
    try:
        import ray
    except ImportError:
        raise InputError("The Ray engine needs Ray: pip install 'ray[data]==2.60.0'.") from None
    if ray.is_initialized():
        return False
    import logging

    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # keep Ray's own chatter off the progress bar
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # workers start with glibc's huge pages, as `whybox audit` restarts itself with them (allocator.py)
    tunables = (with_huge_pages(os.environ) or os.environ).get("GLIBC_TUNABLES")
    env_vars = {"GLIBC_TUNABLES": tunables} if tunables else {}
    if address:
        # a cluster gets this checkout's code; it must have whybox's dependencies installed
        runtime_env = {"py_modules": [str(ROOT / "explainers")], "env_vars": env_vars}
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(
            num_cpus=workers or os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), **env_vars}},
        )
    return True


def run_ray(
    settings: AuditSettings,
    todo: list[dict],
    store,
    *,
    chunk_size: int,
    done: int,
    total: int,
    progress,
    should_stop,
    address: str | None = None,
    workers: int | None = None,
) -> bool:
    """Compute `todo` on Ray, writing each finished chunk to `store`. Returns True when stopped."""
    started_ray = _connect(address, workers)
    import logging

    import ray
    import ray.data

    from explainers.audit.engine import Progress

    for name in ("ray.data", "ray.data._internal.execution.streaming_executor"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        gpus = int(ray.cluster_resources().get("GPU", 0))
        pool = workers or (gpus if gpus else min(2, max(1, int(ray.cluster_resources().get("CPU", 1)))))
        rows = [
            {
                "item": json.dumps(
                    {**item, "rationale": list(item["rationale"]) if item.get("rationale") else None},
                    ensure_ascii=False,
                )
            }
            for item in todo
        ]
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 4 * pool)))
        dataset = dataset.map_batches(
            _AuditWorker,
            fn_constructor_kwargs={"settings": settings.to_dict()},
            batch_size=chunk_size,
            concurrency=pool,
            num_gpus=1 if gpus else 0,
            num_cpus=1,
        )
        started = time.perf_counter()
        finished = 0
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            records = [json.loads(x) for x in batch["record"]]
            store.write(records)
            finished += len({(r["text"], r["rationale"]) for r in records})
            progress(Progress(done + finished, total, done, time.perf_counter() - started, records=records))
            if should_stop():
                return True
        return False
    finally:
        if started_ray:
            ray.shutdown()
