# Shared by scripts/test and scripts/soak: timed steps, and the tools both need.
# shellcheck shell=bash

started=$(date +%s)
step_started=$started
step_name=""
timings=()

# Starts step N of TOTAL, closing the one before (its time goes into the summary).
step() {
  end_step
  step_name="$2"
  step_started=$(date +%s)
  echo
  echo "==> [$1] $2 ($(( step_started - started ))s elapsed)"
}

end_step() {
  if [ -n "$step_name" ]; then
    timings+=("$(printf '%5ss  %s' "$(( $(date +%s) - step_started ))" "$step_name")")
  fi
  step_name=""
}

# Prints the time each step took, then the total.
summary() {
  end_step
  echo
  echo "==> time by step"
  printf '  %s\n' "${timings[@]}"
  printf '%7ss  total\n' "$(( $(date +%s) - started ))"
}

# uv makes the managed venv and the dev venv in seconds instead of minutes (the bridge uses it
# whenever it is on PATH). Installed from PyPI into target/py-tools when the host has none.
ensure_uv() {
  if command -v uv >/dev/null 2>&1; then
    return
  fi
  if [ ! -x target/py-tools/bin/uv ]; then
    echo "installing uv into target/py-tools"
    python3 -m venv target/py-tools
    target/py-tools/bin/python -m pip install --quiet --disable-pip-version-check uv
  fi
  export PATH="$PWD/target/py-tools/bin:$PATH"
}

# Runs the Rust tests with cargo-nextest when it is installed (each test in its own process,
# two at a time on two cores), else with cargo test. $1: "main" or "soak"; the rest go to cargo.
run_rust_tests() {
  local which=$1
  shift
  # Several tests panic on purpose (failing tools and hooks); with backtraces on, their output
  # buries the assertion of a test that really failed. AGY_TEST_BACKTRACE=1 brings them back.
  export RUST_BACKTRACE="${AGY_TEST_BACKTRACE:-0}"
  if command -v cargo-nextest >/dev/null 2>&1; then
    local filter='not test(/::soak_/)'
    [ "$which" = soak ] && filter='test(/::soak_/)'
    cargo nextest run --workspace --all-features --no-fail-fast --hide-progress-bar \
      --status-level fail --final-status-level slow -E "$filter" "$@"
  else
    echo "(cargo-nextest is not installed: running cargo test)"
    if [ "$which" = soak ]; then
      cargo test --workspace --all-features --tests -- soak_ "$@"
    else
      cargo test --workspace --all-features --tests -- --skip soak_ "$@"
    fi
  fi
}
