"""What every command that loads a model shares: the load itself, with the thread policy and precision."""

from __future__ import annotations

import sys


def load_handle(args):
    """The model named by `--model`, on `--device`, with `--dtype`, `--task`, `--precision`, a prompt
    (`--template`, `--labels`) or an `--endpoint` where the command has them; torch gets no more threads
    than idle cores (see serving/threads.py)."""
    from explainers.cli.prompted import load_endpoint_from, prompt_spec
    from explainers.models.loading import load_model
    from explainers.serving.threads import apply_thread_policy

    apply_thread_policy()
    if getattr(args, "endpoint", None):  # a model behind an API (its probe and estimate are printed first)
        return load_endpoint_from(args)
    handle = load_model(
        args.model,
        device=args.device,
        dtype=getattr(args, "dtype", "auto"),
        task=getattr(args, "task", None),
        prompt=prompt_spec(args),  # --template and --labels: a causal LM as a classifier
    )
    if getattr(args, "precision", "float32") != "float32":
        from explainers.inference.precision import set_precision

        probe = set_precision(handle, args.precision)
        if probe is not None:  # auto: say once what it measured and chose
            print(f"whybox: precision {probe.chosen}: {probe.reason}", file=sys.stderr)
    return handle
