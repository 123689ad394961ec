"""Fixtures shared by every app's tests.

`cli_error(cli, argv, *fragments)` runs an app's AppCLI in-process and asserts the bad-input contract: exit code
2, no traceback, and exactly one stderr line `prog ...: error: ...` that contains every fragment (the argument's
name and what was expected). Progress-bar output before the error is not part of the message and is ignored.
"""

from __future__ import annotations

import re

import pytest

_BAR = re.compile(r"\r|\x1b\[")  # tqdm redraws


@pytest.fixture
def cli_error(capsys):
    def check(cli, argv, *fragments: str) -> str:
        code = cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err, captured.err
        assert code == 2, f"exit code {code} for {argv}; stdout: {captured.out[-500:]} stderr: {captured.err[-500:]}"
        lines = [ln for ln in captured.err.strip().splitlines() if ln.strip() and not _BAR.search(ln)]
        errors = [ln for ln in lines if ": error: " in ln]
        assert len(errors) == 1 and errors[0] == lines[-1], captured.err
        for fragment in fragments:
            assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
        return errors[0]

    return check
