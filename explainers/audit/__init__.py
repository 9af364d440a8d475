"""Dataset audit: explain and score many texts, store the results, and summarise them.

- ``data``: read CSV / JSONL / Parquet (or ``builtin:rt-heldout``) into rows to audit.
- ``store``: the Parquet results store, one record per (model, revision, text, method, params, seed, target).
- ``work``: explain + score a chunk of texts (shared by every engine).
- ``engine``: plan, run (local engine or Ray), export; ``ray_engine``: the Ray Data engine.
- ``summary``: accuracy, calibration, per-method faithfulness with bootstrap intervals, words, examples.
- ``report``: the offline HTML audit report. ``cli``: ``whybox audit``.

Nothing here imports streamlit.
"""
