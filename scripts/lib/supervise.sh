# Shared by scripts/dev.sh and scripts/cluster-local.sh (sourced, not run):
# child processes in the background with prefixed output, stopped together.
#
# The caller sets SUPERVISE_TAG (the prefix of the script's own lines,
# "[dev] ...") before sourcing. State lives in the arrays NAMES, PIDS (the
# processes, in start order) and PREFIXERS (their output copiers).
# Needs bash >= 4.4 (`exec {fd}> >(...)`, `wait` on a process substitution).

: "${SUPERVISE_TAG:?set SUPERVISE_TAG before sourcing supervise.sh}"
NAMES=() PIDS=() PREFIXERS=()
SUPERVISE_FORCE=0

say() { echo "[$SUPERVISE_TAG] $*" >&2; }
die() { echo "[$SUPERVISE_TAG] error: $*" >&2; exit 2; }

# The comment block at the top of $1 (after the #! line), for --help.
usage_from_header() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"
}

require_bash_4_4() {
  if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
    die "needs bash 4.4 or newer (this is $BASH_VERSION)"
  fi
}

# Sets BIN_DIR (EVENTS_BIN_DIR, else the release target dir) and dies unless
# events-host, events-reporter and, when $1 is 1, events-publisher are in it.
require_binaries() {
  BIN_DIR="${EVENTS_BIN_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/release}"
  local bins=(events-host events-reporter) b
  (($1)) && bins+=(events-publisher)
  for b in "${bins[@]}"; do
    [[ -x "$BIN_DIR/$b" ]] || die "$BIN_DIR/$b not found: run cargo build --release --bins first (or set EVENTS_BIN_DIR)"
  done
}

# Dies without $PLUGINS_DIR; warns when it holds no plugin.
require_plugins() {
  [[ -d "$PLUGINS_DIR" ]] || die "no plugins directory $PLUGINS_DIR: run scripts/build-plugins.sh first (or set PLUGINS_DIR)"
  compgen -G "$PLUGINS_DIR/*.wasm" >/dev/null ||
    say "warning: no *.wasm in $PLUGINS_DIR (run scripts/build-plugins.sh): nothing will be collected"
}

# Copies stdin to stdout, each line prefixed with [$1]. It ignores SIGINT and
# SIGTERM (a terminal's Ctrl-C reaches the whole process group) and ends when
# its process has exited, so the shutdown logs are not lost.
prefix() {
  trap '' INT TERM
  local line
  while IFS= read -r line || [[ -n "$line" ]]; do
    printf '[%s] %s\n' "$1" "$line"
  done
}

# start NAME COMMAND...: runs COMMAND in the background, output prefixed with
# [NAME]; says "started NAME (pid N)" (tests read these lines).
start() {
  local name="$1" fd
  shift
  exec {fd}> >(prefix "$name")
  PREFIXERS+=("$!")
  "$@" >&"$fd" 2>&1 </dev/null &
  NAMES+=("$name") PIDS+=("$!")
  exec {fd}>&-
  say "started $name (pid $!)"
}

# The pid of the process started as NAME.
pid_of() {
  local i
  for i in "${!NAMES[@]}"; do
    [[ "${NAMES[$i]}" == "$1" ]] && { echo "${PIDS[$i]}"; return 0; }
  done
  return 1
}

# Index (in PIDS) of the first process that has exited, if any.
first_exited() {
  local i
  for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || { echo "$i"; return 0; }
  done
  return 1
}

# http_ready PORT [PATH]: does GET PATH (default /health/ready) on
# 127.0.0.1:PORT answer 200? Plain bash, no curl needed.
http_ready() {
  local status="" http
  { exec {http}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "${2:-/health/ready}" >&"$http"
  IFS= read -r -t 5 status <&"$http"
  exec {http}>&-
  [[ "$status" == *" 200 "* ]]
}

# Does anything accept connections on 127.0.0.1:PORT?
port_open() {
  local fd
  { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  exec {fd}>&-
}

# From here on a Ctrl-C or SIGTERM 2 s or more after the first forces the
# stop (one Ctrl-C may arrive twice: to the script and to its process group).
stopping() {
  local since=$SECONDS
  trap '((SECONDS - '"$since"' >= 2)) && SUPERVISE_FORCE=1' INT TERM
}

# stop_pids SIGNAL TIMEOUT PID...: sends SIGNAL to each PID, waits for all to
# exit; SIGKILLs those left after TIMEOUT seconds or once SUPERVISE_FORCE is
# set. Fails when one had to be killed.
stop_pids() {
  local sig="$1" timeout="$2" alive pid
  shift 2
  (($#)) || return 0
  local deadline=$((SECONDS + timeout))
  kill -"$sig" "$@" 2>/dev/null
  while :; do
    alive=()
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]})) || return 0
    if ((SUPERVISE_FORCE || SECONDS >= deadline)); then
      say "killing ${#alive[@]} process(es) still running"
      kill -KILL "${alive[@]}" 2>/dev/null
      return 1
    fi
    sleep 0.2
  done
}

# Reaps every process and waits for the output copiers, so the last lines
# are printed before the script's own last words.
reap_all() {
  local pid
  for pid in "${PIDS[@]}" "${PREFIXERS[@]}"; do wait "$pid" 2>/dev/null; done
}
