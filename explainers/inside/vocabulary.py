"""The words of tracing, without torch: what can be patched, in which direction, measured how. The CLI
builds its options from these before any model loads."""

COMPONENTS = {
    "resid": "residual stream after the block",
    "attn": "attention output (what attention adds to the residual stream)",
    "mlp": "MLP output (what the MLP adds to the residual stream)",
    "head": "each head's output (the input of attention's output projection)",
    "keys": "keys, per key/value group",
    "values": "values, per key/value group",
}

DIRECTIONS = {"denoise": "restore clean into corrupted", "noise": "put corrupted into clean"}
METRICS = {"logit_diff": "logit(target) − logit(contrast)", "logprob": "log p(target)"}
# component -> what one cell of its grid is: a token position (rows = tokens) or a head / key-value group
UNIT = {"resid": "position", "attn": "position", "mlp": "position", "head": "head", "keys": "group", "values": "group"}
NORMALISED = "normalised so that the corrupted run is 0 and the clean run is 1"
