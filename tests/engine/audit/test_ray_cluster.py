"""Joining a real Ray cluster (issue 20, points 8, 9 and 12): a `ray://` address and a refused token are
the user's setup, said in one line with the fix (exit 2), not "a bug in whybox"; Ray's own output goes to
whybox's log, and a lost worker is said in one line. The messages Ray writes are the ones a two-node
cluster on 127.0.0.1 wrote (ray 2.60)."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from explainers.audit import ray_cluster
from explainers.cli import main

# what Ray 2.60 wrote: the second node / a driver without the head's token, and a killed actor
REFUSED = (
    "[2026-12-07 22:42:25,245 W 32596 32596] gcs_client.cc:210: Failed to get cluster ID from GCS server: "
    "Unauthenticated: RPC error: InvalidAuthToken: Authentication token is missing or incorrect\n"
)
DIED = (
    "\x1b[33m(raylet)\x1b[0m A worker died or was killed while executing a task by an unexpected system error. "
    "Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error code 2.\n"
)
RETRIED = (
    "\x1b[33m(raylet)\x1b[0m Task MapWorker(MapBatches(_AuditWorker)).submit failed. There are infinite retries "
    "remaining, so the task will be retried. Error: The actor is temporarily unavailable\n"
)
KEYERROR = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nKeyError: 7\n'


def _audit(tmp_path, address: str) -> list[str]:
    return [
        "audit",
        "--data",
        "builtin:rt-heldout",
        "--limit",
        "2",
        "--method",
        "occlusion",
        "--engine",
        "ray",
        "--ray-address",
        address,
        "--out",
        str(tmp_path / "out"),
        "--store",
        str(tmp_path / "store"),
    ]


@pytest.mark.parametrize("client_installed", [False, True])
def test_a_ray_client_address_exits_2_naming_the_path_that_works(
    client_installed, tiny_bert_dir, tmp_path, capsys, monkeypatch
):
    pytest.importorskip("ray")
    monkeypatch.setenv("WHYBOX_LOG", str(tmp_path / "whybox.log"))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (object() if client_installed else None) if name == "grpc" else real(name, *a),
    )
    code = main([*_audit(tmp_path, "ray://127.0.0.1:10001"), "--model", str(tiny_bert_dir)])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2, last
    assert last.startswith("whybox: --ray-address ray://127.0.0.1:10001: ")
    assert "with --ray-address HEAD:6379, or auto" in last
    why = "Ray's client is not installed (grpcio)" if not client_installed else "does not work through Ray's client"
    assert why in last


def test_a_refused_token_exits_2_saying_what_to_do_and_rays_retries_go_to_the_log(
    tiny_bert_dir, tmp_path, capfd, monkeypatch
):
    ray = pytest.importorskip("ray")
    log = tmp_path / "whybox.log"
    monkeypatch.setenv("WHYBOX_LOG", str(log))

    def refused(**_kwargs):  # as Ray 2.60 does: its C++ client retries on fd 2, then a plain ConnectionError
        for _ in range(3):
            os.write(2, REFUSED.encode())
        raise ConnectionError("Failed to connect to Ray cluster at 192.0.2.2:6379.")

    monkeypatch.setattr(ray, "init", refused)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    code = main([*_audit(tmp_path, "127.0.0.1:6379"), "--model", str(tiny_bert_dir)])
    err = capfd.readouterr().err
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("whybox: the Ray cluster at 127.0.0.1:6379 refused whybox (ConnectionError).")
    for fix in ("~/.ray/auth_token", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE=token", "RAY_AUTH_MODE=disabled"):
        assert fix in last
    assert "InvalidAuthToken" not in err  # Ray's retries: in the log, not the terminal
    assert log.read_text().count("InvalidAuthToken") == 3


def test_rays_output_goes_to_the_log_and_a_lost_worker_is_one_line(tmp_path, capfd, monkeypatch):
    log = tmp_path / "whybox.log"
    monkeypatch.setenv("WHYBOX_LOG", str(log))
    with ray_cluster.ray_output_to_log():
        print(DIED + RETRIED, end="", flush=True)  # the driver prints the cluster's errors to stdout
        for _ in range(30):  # and what follows a loss, to stderr (C++ and Python alike)
            os.write(2, KEYERROR.encode())
            sys.stderr.write(KEYERROR)
        sys.stderr.flush()
        ray_cluster.terminal().write("audit: 3/6\n")
    out, err = capfd.readouterr()
    assert out == ""
    # one note for the whole burst (the relay's thread and ours write in either order)
    assert sorted(err.splitlines()) == sorted(["", ray_cluster.LOST_NOTE.format(log=log), "audit: 3/6"])
    text = log.read_text()
    assert text.count("KeyError: 7") == 60 and DIED in text and RETRIED in text
    print("after", flush=True)  # stdout and stderr are the terminal's again
    assert capfd.readouterr().out == "after\n"


def test_the_progress_bar_made_before_ray_runs_still_reaches_the_terminal(tmp_path, capfd, monkeypatch):
    from tqdm import tqdm

    from explainers.cli.audit import _Terminal

    log = tmp_path / "whybox.log"
    monkeypatch.setenv("WHYBOX_LOG", str(log))
    bar = tqdm(total=6, file=_Terminal(), desc="audit", ascii=True, mininterval=0, dynamic_ncols=False, ncols=60)
    with ray_cluster.ray_output_to_log():
        os.write(2, b"a line Ray did not end")  # then the relay's own mark: the line still ends in the log
        bar.update(4)
    bar.close()
    err = capfd.readouterr().err
    assert "4/6" in err
    text = log.read_text()
    assert "4/6" not in text and text == "a line Ray did not end\n"
