"""What every command that loads a model shares: the load itself, with the thread policy and precision."""

from __future__ import annotations

import sys


def load_handle(args):
    """The model named by `--model`, on `--device`, with `--dtype`, `--task` and `--precision` where the
    command has them; torch gets no more threads than idle cores (see serving/threads.py)."""
    from explainers.models.loading import load_model
    from explainers.serving.threads import apply_thread_policy

    apply_thread_policy()
    handle = load_model(
        args.model, device=args.device, dtype=getattr(args, "dtype", "auto"), task=getattr(args, "task", None)
    )
    if getattr(args, "precision", "float32") != "float32":
        from explainers.inference.precision import set_precision

        probe = set_precision(handle, args.precision)
        if probe is not None:  # auto: say once what it measured and chose
            print(f"whybox: precision {probe.chosen}: {probe.reason}", file=sys.stderr)
    return handle
