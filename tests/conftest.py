"""Test-suite hygiene: nothing the tests make is left in the system temp dir.

Some tests make failed runs on purpose (the ``subprocess`` adapter keeps a failed run's work dir,
``simdiff-run-*``, for inspection: that is its documented behaviour) and start dask clusters
(whose workers write ``dask-scratch-space/``). For the whole session the temp dir — of this
process (``tempfile.tempdir``), of every child (``TMPDIR``: worker processes, ``python -m
simdiff`` runs, example scripts) and of dask (``temporary-directory``) — is one directory made
for the session, removed when the session ends. pytest's own ``tmp_path`` directories live in
it too. ``SIMDIFF_KEEP_TEST_TMP=1`` keeps it (its path is printed) for a post-mortem.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

_SAVED = {"tempdir": tempfile.tempdir, "TMPDIR": os.environ.get("TMPDIR"),
          "DASK_TEMPORARY_DIRECTORY": os.environ.get("DASK_TEMPORARY_DIRECTORY")}
SESSION_TMP = tempfile.mkdtemp(prefix="simdiff-tests-")


def _redirect(path: str) -> None:
    tempfile.tempdir = path
    os.environ["TMPDIR"] = path
    os.environ["DASK_TEMPORARY_DIRECTORY"] = path
    if "dask" in sys.modules:  # dask read its configuration at import time
        import dask

        dask.config.set({"temporary-directory": path})


# Before any test module (and its imports of dask or joblib) is collected, so that every
# temporary file of the session, pytest's tmp_path included, is made inside SESSION_TMP.
_redirect(SESSION_TMP)


@pytest.fixture(scope="session", autouse=True)
def _session_temp_dir():
    """The session's temp dir (see the module docstring)."""
    _redirect(SESSION_TMP)
    yield SESSION_TMP


def pytest_sessionfinish(session, exitstatus):
    from simdiff import workers

    workers.shutdown_pools()  # kept worker processes hold files in the temp dir
    for key in ("TMPDIR", "DASK_TEMPORARY_DIRECTORY"):
        if _SAVED[key] is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = _SAVED[key]
    tempfile.tempdir = _SAVED["tempdir"]
    if os.environ.get("SIMDIFF_KEEP_TEST_TMP"):
        print(f"\nsimdiff tests: temp dir kept at {SESSION_TMP}")
        return
    shutil.rmtree(SESSION_TMP, ignore_errors=True)
