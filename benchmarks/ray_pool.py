"""How a Ray actor pool shares an audit's chunks (issue 20, point 11), on an existing cluster.

Runs `whybox audit --engine ray` over N texts and counts, from the actors' own logs (each chunk an actor
explains is one "whybox chunk" line in Ray's worker-*.out), the texts each actor explained.

    ray start --head --port=6379 --node-ip-address=127.0.0.1 --num-cpus=1 --temp-dir=/tmp/rayhead
    ray start --address=127.0.0.1:6379 --node-ip-address=127.0.0.1 --num-cpus=1 --temp-dir=/tmp/raynode
    .venv/bin/python -m benchmarks.ray_pool --address 127.0.0.1:6379 --logs /tmp/rayhead /tmp/raynode \\
        --model sentiment --texts 48
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

LINE = re.compile(r"^whybox chunk: (\d+) texts on node (\w+) pid (\d+)$", re.M)


def per_actor(log_roots: list[str], since: float) -> Counter:
    """Texts explained per (node, pid), from the worker logs written after `since`."""
    counts: Counter = Counter()
    for root in log_roots:
        for path in Path(root).glob("session_2*/logs/worker-*.out"):  # not session_latest, a link to one
            if path.stat().st_mtime < since:
                continue
            for n, node, pid in LINE.findall(path.read_text(errors="replace")):
                counts[(node, int(pid))] += int(n)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", required=True, help="HEAD:6379 or auto (a driver on a cluster node)")
    parser.add_argument("--logs", nargs="+", required=True, help="the --temp-dir of each node")
    parser.add_argument("--model", default="sentiment")
    parser.add_argument("--texts", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--method", default="occlusion")
    args = parser.parse_args()

    from explainers.audit.data import read_data
    from explainers.audit.engine import run_audit
    from explainers.audit.work import AuditSettings

    data = read_data("builtin:rt-heldout", limit=args.texts)
    since = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run_audit(
            data,
            AuditSettings(args.model, (args.method,)),
            Path(tmp) / "out",
            store_dir=Path(tmp) / "store",
            engine="ray",
            ray_address=args.address,
            workers=args.workers,
            chunk_size=args.chunk_size,
        )
        seconds = time.perf_counter() - started
    counts = per_actor(args.logs, since)
    print(f"{args.texts} texts, chunks of {args.chunk_size}, {args.workers} actors asked, {seconds:.1f} s")
    for (node, pid), n in sorted(counts.items()):
        print(f"  node {node} actor pid {pid}: {n} texts")
    print(f"  actors that explained texts: {len(counts)}; texts counted: {sum(counts.values())}")


if __name__ == "__main__":
    main()
