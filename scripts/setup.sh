#!/usr/bin/env bash
# The one setup step: installs every server Chorus runs and a Python virtualenv with the
# project. Idempotent: what is already there (in the cache or the venv) is kept, so a second
# run takes seconds. Downloads and builds are cached outside the repo in $CHORUS_CACHE
# (default ~/.cache/chorus); the venv is .venv in the repo.
#
#   nats-server  v2.12.15  go install (Go module proxy)
#   toxiproxy    v2.12.0   go install (Go module proxy)
#   redis-server 7.0       Debian package
#   prometheus   2.42      Debian package (prometheus, promtool)
#   Cassandra    5.0.7     jars from Maven Central, run on Java 17 (Debian openjdk-17)
#   node, npm, chromium, chromium-driver   Debian packages (the web SDK, pages and their tests)
set -euo pipefail

NATS_VERSION=v2.12.15
TOXIPROXY_VERSION=v2.12.0
CASSANDRA_VERSION=5.0.7

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CHORUS_CACHE:-$HOME/.cache/chorus}
bin=$cache/bin
mkdir -p "$bin"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] cannot continue:\033[0m %s\n' "$*" >&2; exit 1; }

apt_updated=0
apt_install() {
  # Installs Debian packages by name; needs root (or sudo) and Debian's package index.
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root or sudo to install Debian packages: $*"
    sudo=sudo
  fi
  if [ $apt_updated = 0 ]; then
    say "apt-get update"
    $sudo apt-get update -qq >/dev/null || die "apt-get update failed (is Debian's mirror reachable?)"
    apt_updated=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null \
    || die "apt-get install $* failed"
}

# --- redis-server (Debian) -----------------------------------------------------------------
if ! command -v redis-server >/dev/null; then
  apt_install redis-server
fi
say "redis-server: $(redis-server --version | awk '{print $3}')"

# --- Prometheus (Debian): promtool checks ops/prometheus/ in the tests; `chorus up
# --with-prometheus` runs the server. The package's own service is not used.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  apt_install prometheus
fi
say "prometheus: $(prometheus --version 2>&1 | awk 'NR==1{print $3}')"

# --- Go, for the pinned NATS and toxiproxy builds -------------------------------------------
go_install() {  # go_install <module/path/cmd>@<version> <binary name in $bin>
  local target=$1 name=$2 stamp="$bin/.$2.version"
  if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$target" ]; then
    return
  fi
  command -v go >/dev/null || die "Go is needed to build $name ($target); install Go >= 1.23"
  say "building $name from $target (one-off, cached in $bin)"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && GOBIN="$tmp/out" GOFLAGS=-mod=mod go install "$target") \
    || die "go install $target failed"
  # The built binary is named after the module's last path element ("v2" is skipped by Go).
  mv "$tmp/out/"* "$bin/$name"
  rm -rf "$tmp"
  echo "$target" > "$stamp"
}
go_install "github.com/nats-io/nats-server/v2@$NATS_VERSION" nats-server
go_install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" toxiproxy-server
say "nats-server: $("$bin/nats-server" --version)"
say "toxiproxy-server: $("$bin/toxiproxy-server" --version 2>&1 | head -1)"

# --- Cassandra (Maven Central jars on Java 17) ----------------------------------------------
if ! command -v java >/dev/null || ! java -version 2>&1 | grep -qE 'version "(17|21)'; then
  apt_install openjdk-17-jre-headless
fi
cass=$cache/cassandra-$CASSANDRA_VERSION
if [ ! -f "$cass/lib/cassandra-all-$CASSANDRA_VERSION.jar" ]; then
  command -v mvn >/dev/null || apt_install maven
  say "fetching Cassandra $CASSANDRA_VERSION and its dependencies from Maven Central"
  mkdir -p "$cass"
  cat > "$cass/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>chorus</groupId><artifactId>cassandra-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId><artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  (cd "$cass" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$cass/lib.tmp" \
      -DincludeScope=runtime) || die "Maven could not fetch cassandra-all $CASSANDRA_VERSION"
  rm -rf "$cass/lib" && mv "$cass/lib.tmp" "$cass/lib"
fi
say "cassandra: $CASSANDRA_VERSION ($(ls "$cass/lib" | wc -l) jars in $cass/lib)"

# --- the web: Node for the TypeScript SDK and the pages, Chromium for their tests ------------
# Debian's packages; npm's downloads are cached in ~/.npm, node_modules and the build output
# (web/dist) stay out of git. Each step runs again only when what it depends on changed.
web_apt=()
{ command -v node >/dev/null && command -v npm >/dev/null; } || web_apt+=(nodejs npm)
command -v chromium >/dev/null || web_apt+=(chromium)
command -v chromedriver >/dev/null || web_apt+=(chromium-driver)
dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || web_apt+=(fonts-noto-color-emoji)
[ ${#web_apt[@]} = 0 ] || apt_install "${web_apt[@]}"
web=$root/web
lock_sum=$(sha256sum "$web/package-lock.json" | cut -c1-16)
if [ "$(cat "$web/node_modules/.chorus-lock" 2>/dev/null)" != "$lock_sum" ]; then
  say "npm ci in web/ (typescript, esbuild; cached in ~/.npm)"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in web/ failed"
  echo "$lock_sum" > "$web/node_modules/.chorus-lock"
fi
src_sum=$(cd "$web" && find package.json sdk/package.json sdk/tsconfig.json sdk/src pages \
            -type f | sort | xargs cat | sha256sum | cut -c1-16)
if [ ! -f "$web/dist/viewer.js" ] || [ "$(cat "$web/dist/.chorus-src" 2>/dev/null)" != "$src_sum" ]; then
  say "building the browser SDK and the pages into web/dist"
  (cd "$web" && npm run build --silent >/dev/null) || die "the web build failed (cd web && npm run build)"
  echo "$src_sum" > "$web/dist/.chorus-src"
fi
say "web: node $(node --version), $(chromium --version 2>/dev/null | head -1)"

# --- Python virtualenv ----------------------------------------------------------------------
venv=$root/.venv
py=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python >= 3.11 is needed ($py is $("$py" --version 2>&1))"
  say "creating $venv"
  "$py" -m venv "$venv" || die "python venv failed (Debian: apt-get install python3-venv)"
fi
stamp=$venv/.chorus-deps
want=$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python dependencies into .venv"
  "$venv/bin/pip" install -q --upgrade pip >/dev/null
  "$venv/bin/pip" install -q -e "$root[dev,iac]" || die "pip install failed"
  echo "$want" > "$stamp"
fi
say "ready: $($venv/bin/chorus --version)"
