"""Help texts for the flags several `whybox` commands share: written once, so that every command says the
same about them."""

SEED = "seed of the random methods (LIME, Kernel SHAP, ...): the same text and seed give the same scores (default 0)"
JSON = "print the result as strict JSON (undefined numbers are null) instead of text"
DEVICE = "where the model runs: auto (a GPU when there is one), cpu, cuda, cuda:N or mps"
DTYPE = (
    "the type the model's weights are loaded in, for all of its work, gradients included: auto (float32), "
    "float16 or bfloat16 (half the memory). Unlike --precision, which keeps the weights and gradients in "
    "float32 and runs only forward-only rows in bf16"
)
PRECISION = (
    "forward-only rows (LIME, occlusion, leave-one-out, metrics) in bf16 with the weights kept as loaded; "
    "gradients stay float32. auto: bf16 only where a probe finds it faster and within 0.01 of float32's "
    "probabilities. Unlike --dtype, which loads the whole model in another type"
)
TASK = "override task detection: classification or causal_lm (default: from the model's config)"
MODE = "how the faithfulness metrics remove tokens: delete them, or replace them by the mask/pad token (default delete)"
