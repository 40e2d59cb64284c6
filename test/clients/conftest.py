"""Shared by the real-client tests (test_meltano.py, test_pyairbyte.py): the bundled mock API with its
clock and ground truth, and the comparison of what a client loaded with that truth.

Run them with `npm run test:clients` (scripts/test-clients.sh), which builds the pinned venvs first.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each stream's primary key (README, "Streams"); the same as test/helpers.ts KEYS.
KEYS: dict[str, list[str]] = {
    "projects": ["id"],
    "pipelines": ["id"],
    "workflows": ["id"],
    "jobs": ["id", "_workflow_id"],
    "job_details": ["_project_slug", "number"],
    "tests": ["_project_slug", "_job_number", "classname", "name", "_file", "_occurrence"],
}
# The cursor of each incremental stream.
CURSORS: dict[str, str] = {
    "pipelines": "updated_at",
    "workflows": "created_at",
    "jobs": "_workflow_created_at",
    "job_details": "_workflow_created_at",
    "tests": "_workflow_created_at",
}


class Mock:
    """test/clients/mock_driver.mjs: the mock API on 127.0.0.1, driven over its stdin."""

    def __init__(self) -> None:
        for built in ("dist/cli/singer.js", "dist/cli/airbyte.js", "dist-dev/mock/server.js"):
            if not (ROOT / built).exists():
                pytest.exit(f"{built} is missing: run `npm ci && npm run build` first", returncode=2)
        self.proc = subprocess.Popen(
            ["node", str(ROOT / "test/clients/mock_driver.mjs")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        hello = json.loads(self.proc.stdout.readline())
        self.base_url: str = hello["base_url"]
        self.token: str = hello["token"]
        self.now: str = hello["now"]
        assert self.base_url.startswith("http://127.0.0.1:"), self.base_url

    def _ask(self, command: dict) -> Any:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        assert not (isinstance(reply, dict) and "error" in reply), reply
        return reply

    def advance(self, hours: float) -> str:
        """Moves the world's clock; new pipelines arrive, running workflows finish."""
        self.now = self._ask({"advance_hours": hours})["now"]
        return self.now

    def truth(self, start_date: str, project_slugs: list[str]) -> dict[str, list[dict]]:
        """What a full sync with this start_date holds at the mock's current clock, stream by stream."""
        return self._ask({"truth": start_date, "project_slugs": project_slugs})

    def requests(self) -> dict:
        """Requests answered since the last call."""
        return self._ask({"requests": True})

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def mock() -> Iterable[Mock]:
    m = Mock()
    yield m
    m.close()


# ---- comparing loaded rows with the ground truth

_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def norm(value: Any) -> Any:
    """One form for a value whatever the store made of it: instants as UTC ISO text to the
    microsecond, decimals as floats, containers normalised inside (JSON text is parsed by the caller)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds")
    if isinstance(value, Decimal):  # PyAirbyte's DuckDB cache keeps numbers as DECIMAL
        return float(value)
    if isinstance(value, str) and _ISO.match(value):
        return norm(datetime.fromisoformat(value.replace("Z", "+00:00")))
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [norm(v) for v in value]
    return value


def key_of(stream: str, record: dict) -> str:
    return "|".join(str(record.get(k)) for k in KEYS[stream])


def by_key(stream: str, records: Iterable[dict]) -> dict[str, dict]:
    """Records by primary key, the last one winning (what an upserting destination keeps)."""
    return {key_of(stream, r): r for r in records}


def differences(stream: str, loaded: dict[str, dict], truth: list[dict], json_columns: set[str], ignore: Iterable[str]) -> list[str]:
    """Where the loaded rows (by key) differ from the ground truth: missing or extra keys, and each
    column that holds another value than the truth's (a column the truth lacks must be null)."""
    expected = by_key(stream, truth)
    problems = [f"{stream} {k}: missing" for k in sorted(expected.keys() - loaded.keys())]
    problems += [f"{stream} {k}: not in the ground truth" for k in sorted(loaded.keys() - expected.keys())]
    skip = set(ignore)
    for k in sorted(expected.keys() & loaded.keys()):
        row, want = loaded[k], expected[k]
        for column, got in row.items():
            if column in skip:
                continue
            if column in json_columns and isinstance(got, str):
                got = json.loads(got)
            if norm(got) != norm(want.get(column)):
                problems.append(f"{stream} {k}.{column}: loaded {got!r}, truth {want.get(column)!r}")
        for column in want.keys() - row.keys():
            problems.append(f"{stream} {k}.{column}: no such column loaded")
    return problems


def changed_keys(stream: str, before: list[dict], after: list[dict]) -> set[str]:
    """Keys that are new in `after` or whose record differs from `before`."""
    old = by_key(stream, before)
    return {k for k, r in by_key(stream, after).items() if k not in old or norm(old[k]) != norm(r)}


def instant(value: Any) -> datetime:
    """A cursor value (text or a datetime from the store) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def report(line: str) -> None:
    """A line for the stage's log (pytest -s shows it; the closing summary stays pytest's)."""
    print(f"[clients] {line}", flush=True)
