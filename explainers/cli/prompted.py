"""`--template`, `--labels`, `--calibrate`: a causal LM used as a classifier, on explain and evaluate."""

from __future__ import annotations


def add_prompt_arguments(p) -> None:
    p.add_argument(
        "--template",
        default=None,
        help="use a causal LM as a classifier: a prompt with a {text} slot, e.g. 'Review: {text}\\nSentiment:'",
    )
    p.add_argument(
        "--labels",
        default=None,
        help="with --template: label words, comma-separated; '|' adds surface forms (positive|good,negative|bad)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="with --template: contextual calibration on the content-free input 'N/A' (log-odds unchanged)",
    )


def prompt_spec(args):
    """The PromptSpec the arguments ask for, or None; a clear error for half of one."""
    from explainers.errors import InputError
    from explainers.models.prompt_classifier import PromptSpec

    template, labels = getattr(args, "template", None), getattr(args, "labels", None)
    if template is None and labels is None:
        if getattr(args, "calibrate", False):
            raise InputError("--calibrate needs --template and --labels.")
        return None
    if template is None or labels is None:
        raise InputError("--template and --labels go together: give both.")
    template = template.replace("\\n", "\n")  # as typed in a shell
    return PromptSpec.parse(template, labels, args.calibrate)


def add_endpoint_arguments(p) -> None:
    p.add_argument(
        "--endpoint",
        default=None,
        metavar="URL",
        help="a model behind an OpenAI-compatible API (with --template/--labels); key from WHYBOX_ENDPOINT_KEY",
    )
    p.add_argument("--endpoint-model", default=None, metavar="NAME", help="the endpoint's model name")
    p.add_argument("--max-calls", type=int, default=None, metavar="N", help="hard cap on calls to the endpoint")
    p.add_argument(
        "--endpoint-tokenizer",
        default="smollm2",
        metavar="MODEL",
        help="local tokenizer that cuts the text into words (built-in name or folder; default smollm2)",
    )


def load_endpoint_from(args):
    """The endpoint handle the arguments describe; prints the probe and the estimate before sending more."""
    import sys

    from explainers.errors import InputError
    from explainers.inference.remote import EndpointSettings
    from explainers.methods import get_method
    from explainers.methods.registry import n_features
    from explainers.models.builtin import cache_dir
    from explainers.models.endpoint import estimate_calls, load_endpoint

    spec = prompt_spec(args)
    if spec is None:
        raise InputError("--endpoint needs --template and --labels: whybox explains a classifier prompt.")
    if args.max_calls is not None and args.max_calls < 0:
        raise InputError("--max-calls must be 0 or more.")
    settings = EndpointSettings(
        url=args.endpoint,
        model=args.endpoint_model or "",
        max_calls=args.max_calls,
        cache_path=cache_dir() / "endpoint-answers.sqlite",
    )
    handle = load_endpoint(settings, spec, args.endpoint_tokenizer)
    for method in args.method:  # refused methods are refused before anything is sent
        refused = handle.refuses(get_method(method))
        if refused:
            raise InputError(refused)
    probe = handle.probe(args.text)
    enc = handle.encode(args.text)
    for method in args.method:
        spec_m = get_method(method)
        guess = estimate_calls(handle, enc, spec_m, spec_m.validate({}, n_features(spec_m, enc)), probe)
        print(
            f"whybox: {method}: at most {guess['calls_at_most']} calls, {guess['prompt_tokens_at_most']} prompt tokens "
            "(before de-duplication and the cache)",
            file=sys.stderr,
        )
    print(f"whybox: endpoint noise floor at temperature 0: {probe['noise_floor']:.2g} (log-odds)", file=sys.stderr)
    handle.probe_result = probe
    return handle
