# Shell helpers shared by the bench scripts (sourced; the script defines say and fail first).

# Nothing listens on 127.0.0.1:PORT, TCP or UDP.
port_free() { [ -z "$(ss -Hlnt "sport = :$1")$(ss -Hlnu "sport = :$1")" ]; }

# Wait until something listens on PORT; fail after SECONDS, or at once if PID (optional) died.
wait_port() { # port seconds what [pid]
    local i
    for ((i = 0; i < $2 * 20; i++)); do
        port_free "$1" || return 0
        if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then fail "$3 exited at start"; fi
        sleep 0.05
    done
    fail "$3 is not listening on 127.0.0.1:$1 after $2 s"
}

stop_pid() { # pid: TERM, wait up to 10 s, KILL
    local p=$1
    kill -0 "$p" 2>/dev/null || return 0
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
}

# Set SIPMTA_BIN (a release build of this checkout unless given) and SIPMTA_REV (its label).
build_sipmta() { # repo
    if [ -z "$SIPMTA_BIN" ]; then
        say "building sipmta (cargo build --release --locked -p sipmta)"
        (cd "$1" && cargo build --release --locked -p sipmta >&2)
        SIPMTA_BIN="${CARGO_TARGET_DIR:-$1/target}/release/sipmta"
        if [ -z "$SIPMTA_REV" ]; then
            SIPMTA_REV=$(git -C "$1" rev-parse --short HEAD)
            git -C "$1" diff --quiet HEAD -- . 2>/dev/null || SIPMTA_REV="$SIPMTA_REV + uncommitted changes"
        fi
    fi
    SIPMTA_REV=${SIPMTA_REV:-"$SIPMTA_BIN"}
    [ -x "$SIPMTA_BIN" ] || fail "no sipmta binary at $SIPMTA_BIN"
}
