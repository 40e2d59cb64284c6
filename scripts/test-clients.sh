#!/usr/bin/env bash
# The connector under the real clients users run, against the bundled mock API (docs/clients.md):
#   meltano  - Meltano runs this repository's meltano.yml into target-duckdb (test/clients/test_meltano.py)
#   airbyte  - PyAirbyte runs the built CLI and, when a Docker engine answers, the image (test_pyairbyte.py)
#
#   scripts/test-clients.sh [meltano] [airbyte]        (npm run test:clients: both)
#
# Needs `npm ci && npm run build` first, and Python 3.11 (PYTHON=... to choose another interpreter).
# Each client gets its own venv under .clients/ (git-ignored; CLIENTS_DIR overrides), built by uv from the
# pinned test/clients/requirements-*.txt and rebuilt only when those files or the interpreter change
# (a hash in <venv>/.stamp). Only a rebuild needs the package index; if it cannot be reached the stage
# fails with one line saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3.11}
CLIENTS_DIR=${CLIENTS_DIR:-$ROOT/.clients}
REQS=$ROOT/test/clients

fail() { echo "test-clients: $*" >&2; exit 1; }

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(meltano airbyte)
for s in "${stages[@]}"; do
  case $s in meltano|airbyte) ;; *) fail "unknown stage '$s' (meltano or airbyte)";; esac
done
[ -f dist/cli/singer.js ] && [ -f dist-dev/mock/server.js ] || fail "the build is missing: run 'npm ci && npm run build' first"
command -v "$PYTHON" >/dev/null 2>&1 || fail "$PYTHON not found (Python 3.11 is needed; PYTHON=... chooses another)"

# The index pip would use (PIP_INDEX_URL, else pip's default) answers within 15 s.
index_reachable() {
  "$PYTHON" - <<'EOF' >/dev/null 2>&1
import os, urllib.request
from pip._internal.models.index import PyPI
url = (os.environ.get("PIP_INDEX_URL") or PyPI.simple_url).rstrip("/") + "/pip/"
urllib.request.urlopen(url, timeout=15).read(1)
EOF
}

stamp_of() { { "$PYTHON" --version; cat "$@"; } | sha256sum | cut -d' ' -f1; }

# uv (pinned in requirements-uv.txt), installed with pip into its own venv: it builds the others.
ensure_uv() {
  local dir=$CLIENTS_DIR/uv stamp
  stamp=$(stamp_of "$REQS/requirements-uv.txt")
  if [ ! -f "$dir/.stamp" ] || [ "$(cat "$dir/.stamp")" != "$stamp" ]; then
    index_reachable || fail "the Python package index cannot be reached, so uv ($REQS/requirements-uv.txt) cannot be installed"
    rm -rf "$dir"
    mkdir -p "$CLIENTS_DIR"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS/requirements-uv.txt" >"$dir.log" 2>&1 \
      || { tail -20 "$dir.log" >&2; fail "pip install -r $REQS/requirements-uv.txt failed (log: $dir.log)"; }
    echo "$stamp" >"$dir/.stamp"
  fi
  UV=$dir/bin/uv
}

# ensure_venv NAME REQUIREMENTS: the venv's path on stdout; exactly the pinned packages (uv pip sync).
ensure_venv() {
  local name=$1 req=$2 dir=$CLIENTS_DIR/$1 stamp
  stamp=$(stamp_of "$req" "$REQS/requirements-uv.txt")
  if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
    echo "--- $name venv: reused ($dir)" >&2
  else
    index_reachable || fail "the Python package index cannot be reached, so the pinned $name venv ($req) cannot be built"
    echo "--- $name venv: building $dir from $req" >&2
    rm -rf "$dir"
    { "$UV" venv --quiet --python "$PYTHON" "$dir" && VIRTUAL_ENV=$dir "$UV" pip sync --quiet ${PIP_INDEX_URL:+--index-url "$PIP_INDEX_URL"} "$req"; } >"$dir.log" 2>&1 \
      || { tail -20 "$dir.log" >&2; fail "installing $req failed (log: $dir.log)"; }
    echo "$stamp" >"$dir/.stamp"
  fi
  echo "$dir"
}

# Meltano's own venv for target-duckdb (meltano.yml's pip_url, the rest pinned by the constraints),
# in a Meltano system folder kept beside the venv; `meltano run` reuses it while its pip_url is unchanged.
ensure_loader() {
  local venv=$1 sys=$CLIENTS_DIR/meltano-sys stamp project
  stamp=$(stamp_of "$venv/.stamp" "$REQS/constraints-target-duckdb.txt" <(grep -A3 'name: target-duckdb' meltano.yml))
  if [ -f "$sys/.stamp" ] && [ "$(cat "$sys/.stamp")" = "$stamp" ]; then
    echo "--- target-duckdb: reused ($sys)" >&2
    return
  fi
  index_reachable || fail "the Python package index cannot be reached, so Meltano cannot install target-duckdb"
  echo "--- target-duckdb: meltano install loader target-duckdb" >&2
  rm -rf "$sys"
  project=$(mktemp -d)
  cp meltano.yml "$project/"
  (cd "$project" && MELTANO_SYS_DIR_ROOT=$sys MELTANO_DATABASE_URI=sqlite:///$project/meltano.db \
    MELTANO_SEND_ANONYMOUS_USAGE_STATS=false MELTANO_CLI_DISABLE_VERSION_CHECK=true \
    UV_CONSTRAINT=$REQS/constraints-target-duckdb.txt PIP_CONSTRAINT=$REQS/constraints-target-duckdb.txt \
    "$venv/bin/meltano" install loader target-duckdb >"$sys.log" 2>&1) \
    || { tail -20 "$sys.log" >&2; rm -rf "$project"; fail "meltano install loader target-duckdb failed (log: $sys.log)"; }
  rm -rf "$project"
  echo "$stamp" >"$sys/.stamp"
}

# pytest's counts for a stage, from its JUnit XML: "passed failed skipped".
counts() {
  "$PYTHON" - "$1" <<'EOF2'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 1, 0)  # no report: pytest did not get to run the tests
    sys.exit()
suites = [root] if root.tag == "testsuite" else list(root)
n = lambda a: sum(int(s.get(a, 0)) for s in suites)
failed = n("failures") + n("errors")
print(n("tests") - failed - n("skipped"), failed, n("skipped"))
EOF2
}

status=0 passed=0 failed=0 skipped=0 times=()
ensure_uv
for s in "${stages[@]}"; do
  started=$SECONDS
  report=$CLIENTS_DIR/$s-junit.xml
  rm -f "$report"
  case $s in
    meltano)
      venv=$(ensure_venv meltano "$REQS/requirements-meltano.txt")
      ensure_loader "$venv"
      ready=$SECONDS
      echo "--- meltano: pytest test/clients/test_meltano.py" >&2
      MELTANO_BIN=$venv/bin/meltano MELTANO_SYS_DIR_ROOT=$CLIENTS_DIR/meltano-sys \
        "$venv/bin/python" -m pytest --junitxml="$report" test/clients/test_meltano.py || status=1
      ;;
    airbyte)
      venv=$(ensure_venv airbyte "$REQS/requirements-airbyte.txt")
      ready=$SECONDS
      echo "--- airbyte: pytest test/clients/test_pyairbyte.py" >&2
      "$venv/bin/python" -m pytest --junitxml="$report" test/clients/test_pyairbyte.py || status=1
      ;;
  esac
  read -r p f k < <(counts "$report")
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + k))
  times+=("$s $((SECONDS - started)) s (venv $((ready - started)) s, tests $((SECONDS - ready)) s)")
done
for t in "${times[@]}"; do echo "--- stage $t"; done
echo "clients: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] || status=1
exit $status
