# Sourced by the bench scripts: `need wrk curl …` installs what is missing
# from Debian's packages when run as root (as scripts/test does), and
# otherwise names the packages to install and stops. A tool is named by
# the command it provides; `postgres` and `redis-server` are the servers
# the test kit starts.
need() {
  local missing=() tool pkg
  for tool in "$@"; do
    case "$tool" in
      postgres)
        compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && continue
        pkg=postgresql ;;
      psql) pkg=postgresql-client ;;
      python3) pkg=python3 ;;
      *) pkg=$tool ;;
    esac
    [ "$tool" = postgres ] || ! command -v "$tool" >/dev/null 2>&1 || continue
    missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
}
