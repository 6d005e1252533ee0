# Developer shortcuts. The README's two commands work without `just`.

export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", env_var("HOME") + "/.cache/paddock/target")

# Run the host on its embedded defaults.
serve *ARGS:
    cargo run -p paddock -- serve {{ARGS}}

# Every test, as CI runs them.
test:
    cargo test --workspace

# What CI runs: format, lint, tests.
ci:
    bash .ci/run

fmt:
    cargo fmt --all

lint:
    cargo clippy --workspace --all-targets -- -D warnings

# The benchmarks (release build; not part of CI): plugins, sessions.
bench NAME="plugins" *ARGS:
    cargo bench -p paddock --bench {{NAME}} {{ARGS}}

# runnerd as it ships into sandboxes: static (musl), stripped.
runnerd-static:
    rustup target add x86_64-unknown-linux-musl
    cargo build -p paddock-runnerd --profile sandbox --target x86_64-unknown-linux-musl
    @echo "$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/sandbox/runnerd"

# The default sandbox image of the local-docker provider, built locally
# (FROM scratch: a static runnerd and busybox; nothing is pulled).
sandbox-image IMAGE="localhost/paddock-sandbox:latest":
    bash host/sandbox-image/build.sh {{IMAGE}}

# Build the shipped plugins as .wasm files (they are also embedded by the host build).
plugins:
    cargo build --profile plugin --target wasm32-wasip2 -p agent-claude-code -p agent-codex -p agent-gemini -p agent-opencode

# Rewrite the adapters' golden files after a deliberate change; review the diff!
golden:
    PADDOCK_UPDATE_GOLDEN=1 cargo test -p agent-claude-code -p agent-codex -p agent-gemini -p agent-opencode
    PADDOCK_UPDATE_GOLDEN=1 cargo test -p paddock --test provider_cluster golden
