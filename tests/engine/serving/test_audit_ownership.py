"""Finished audits belong to the session that ran them (or to a shared folder the operator names, said
plainly), and uploads are deleted when no longer needed, with a retention the operator sets (issue 20,
point 6)."""

from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

from explainers.errors import InputError
from explainers.serving import audits
from tests.app.test_app import APP, shown

PICK = "Finished audits (newest first)"


def _audit_page(tiny_bert_dir, cache, monkeypatch) -> AppTest:
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    monkeypatch.setenv("WHYBOX_CACHE", str(cache))
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    at.switch_page("app_pages/audit.py").run()
    at.number_input(key="w_audit_limit").set_value(10).run()
    at.multiselect(key="w_audit_methods").set_value(["occlusion"]).run()
    assert not at.exception, at.exception
    return at


def _listed(at: AppTest) -> list[str]:
    return next((s.options for s in at.selectbox if s.label == PICK), [])


@pytest.mark.parametrize("shared", [False, True], ids=["private", "shared-folder"])
def test_a_finished_audit_is_listed_to_its_session_only_unless_the_operator_shares_a_folder(
    shared, tiny_bert_dir, tmp_path, monkeypatch
):
    if shared:
        monkeypatch.setenv(audits.SHARED_ENV, str(tmp_path / "shared"))
    else:
        monkeypatch.delenv(audits.SHARED_ENV, raising=False)
    owner = _audit_page(tiny_bert_dir, tmp_path / "cache", monkeypatch)
    next(b for b in owner.button if b.label == "Start audit").click().run()
    assert not owner.exception, owner.exception
    owner.run()
    assert len(_listed(owner)) == 1  # its own audit
    visitor = _audit_page(tiny_bert_dir, tmp_path / "cache", monkeypatch)  # another session, same server
    captions = shown(" ".join(c.value for c in visitor.caption))
    if shared:
        assert _listed(visitor) == _listed(owner)
        assert "Audits on this server are **shared**" in captions and str(tmp_path / "shared") in captions
        assert (tmp_path / "shared").is_dir()
    else:
        assert _listed(visitor) == []
        assert "Only the audits run in this browser session are listed" in captions


def test_uploads_older_than_the_retention_are_deleted_and_those_in_use_kept(tmp_path):
    folder = tmp_path / "audit-uploads"
    folder.mkdir()
    old, fresh, in_use = (folder / n for n in ("old.csv", "fresh.csv", "in-use.csv"))
    for path in (old, fresh, in_use):
        path.write_text("text\\nhello\\n")
    now = 1_000_000.0
    os.utime(old, (now - 7200, now - 7200))
    os.utime(in_use, (now - 7200, now - 7200))
    os.utime(fresh, (now - 60, now - 60))
    gone = audits.prune_uploads(folder, max_age=3600, keep=[in_use], now=now)
    assert gone == [old]
    assert sorted(p.name for p in folder.iterdir()) == ["fresh.csv", "in-use.csv"]


def test_the_retention_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv(audits.RETENTION_ENV, raising=False)
    assert audits.retention_seconds() == 24 * 3600
    monkeypatch.setenv(audits.RETENTION_ENV, "0.5")
    assert audits.retention_seconds() == 1800
    for bad in ("-1", "soon", "nan", "inf"):
        monkeypatch.setenv(audits.RETENTION_ENV, bad)
        with pytest.raises(InputError, match="WHYBOX_UPLOAD_RETENTION_HOURS must be a number of hours"):
            audits.retention_seconds()
