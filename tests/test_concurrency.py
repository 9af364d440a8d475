"""Several runs sharing one model handle at once (two dashboard visitors, one slot per core each)
must all finish: no lock may be taken inside the gateway lock that a thread waiting for the gateway
lock can hold."""

from __future__ import annotations

import faulthandler
import sys
import threading

from explainers.metrics.faithfulness import evaluate

from explainers.methods import explain

TEXTS = ["a gripping , funny and beautifully acted film .", "dull , lifeless and far too long ."]
# the mix that hung: methods that hook the model (they hold the gateway lock and then read the
# context's embeddings), Kernel SHAP and LIME (which compute their embeddings while others hook),
# and faithfulness metrics scoring through the gateway
MIX = [
    ("gradient_x_activation", {}),
    ("kernel_shap", {"n_samples": 20}),
    ("layer_conductance", {"n_steps": 4}),
    ("lime", {"n_samples": 20}),
    ("deeplift", {}),
]
ROUNDS = 6
NO_PROGRESS_SECONDS = 60  # a finished explanation at least this often, or the runs are stuck


def test_four_threads_sharing_one_handle_all_finish(tiny_bert):
    progress = threading.Condition()
    done = {"explanations": 0, "threads": 0}
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for round_ in range(ROUNDS):
                method, params = MIX[(offset + round_) % len(MIX)]
                exp = explain(tiny_bert, TEXTS[(offset + round_) % 2], method, seed=round_, **params)
                if round_ % 2 == offset % 2:
                    evaluate(tiny_bert, exp)
                with progress:
                    done["explanations"] += 1
                    progress.notify_all()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            with progress:
                done["threads"] += 1
                progress.notify_all()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    with progress:
        while done["threads"] < len(threads):
            before = done["explanations"]
            progress.wait_for(
                lambda before=before: done["explanations"] > before or done["threads"] == len(threads),
                timeout=NO_PROGRESS_SECONDS,
            )
            if done["explanations"] == before and done["threads"] < len(threads):
                faulthandler.dump_traceback(file=sys.stderr)  # where each thread is parked
                raise AssertionError(f"no explanation finished in {NO_PROGRESS_SECONDS} s: the threads are stuck")
    assert not errors, errors
    assert done["explanations"] == 4 * ROUNDS
