#!/bin/sh
# Fetches Debian source packages for real-project tests and benchmarks; prints where each upstream tree lies.
#
#   scripts/fetch_corpus.sh lua5.4 zlib sqlite3
#
# For each NAME: `apt-get source --download-only NAME` (NAME/bookworm when the newest version is gone from the
# mirror) into ${CPROF_CORPUS:-$HOME/.cache/cprof/corpus}/NAME/download/, then the upstream tarball
# (NAME_VERSION.orig.tar.*, never Debian's patches: they switch Lua's Makefile to libtool) is extracted once into
# NAME/src/, and that path is printed, one line per NAME. A second call finds everything cached and only prints.
# Treat src/ as read-only: build in a copy of it.
#
# sqlite3 ships no amalgamation in its Debian orig tarball; we make it the way upstream does, with its own
# configure and `make sqlite3.c` (this needs tclsh), out of tree in NAME/amalgamation/, which then holds
# sqlite3.c, sqlite3.h and shell.c.
#
# deb-src lines are added to apt's sources (as in shared/design.md) when none are configured. Exit status: 0 when
# every NAME is ready, 1 when one could not be fetched (apt's messages are shown), 2 for usage.
set -eu

if [ $# -eq 0 ]; then
    echo "usage: $0 NAME... (Debian source package names, e.g. lua5.4 zlib sqlite3)" >&2
    exit 2
fi

CACHE="${CPROF_CORPUS:-$HOME/.cache/cprof/corpus}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
# apt drops to the _apt user to download, which cannot write into a root-owned cache directory: it then warns on
# every download. Downloading as ourselves is what it falls back to anyway.
APT_SOURCE="apt-get -q -o APT::Sandbox::User=$(id -un) source --download-only"

has_deb_src() {
    grep -qs '^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null ||
        grep -qs '^Types:.*deb-src' /etc/apt/sources.list.d/*.sources 2>/dev/null
}

enable_deb_src() {
    has_deb_src && return 0
    echo "fetch_corpus: enabling deb-src in /etc/apt/sources.list.d/deb-src.sources" >&2
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
        $SUDO tee /etc/apt/sources.list.d/deb-src.sources >/dev/null
    $SUDO apt-get update -q >/dev/null
}

# Downloads NAME's source package into $1/download (quiet; messages go to $1/fetch.log).
download() {
    dir=$1 name=$2
    mkdir -p "$dir/download"
    log="$dir/fetch.log"
    (cd "$dir/download" && $APT_SOURCE "$name") >"$log" 2>&1 && return 0
    # An outdated package list names a version the mirror no longer has (404): refresh it once, then ask for the
    # release's own version.
    $SUDO apt-get update -q >>"$log" 2>&1 || true
    (cd "$dir/download" && $APT_SOURCE "$name") >>"$log" 2>&1 && return 0
    (cd "$dir/download" && $APT_SOURCE "$name/bookworm") >>"$log" 2>&1 && return 0
    tail -n 5 "$log" >&2
    return 1
}

# Extracts the upstream tarball of $1/download into $1/src (atomically: an interrupted run leaves no half tree).
extract() {
    dir=$1
    tarball=$(ls "$dir"/download/*.orig.tar.* 2>/dev/null | head -n 1)
    if [ -z "$tarball" ]; then
        echo "fetch_corpus: no upstream tarball (*.orig.tar.*) in $dir/download" >&2
        return 1
    fi
    rm -rf "$dir/src.partial"
    mkdir -p "$dir/src.partial"
    tar -xf "$tarball" -C "$dir/src.partial" --strip-components=1
    mv "$dir/src.partial" "$dir/src"
}

# sqlite3.c and friends, made by upstream's own build from the canonical sources.
make_amalgamation() {
    dir=$1
    [ -f "$dir/amalgamation/sqlite3.c" ] && return 0
    if ! command -v tclsh >/dev/null 2>&1; then
        echo "fetch_corpus: making sqlite3.c needs tclsh (apt-get install tcl)" >&2
        return 1
    fi
    rm -rf "$dir/amalgamation.partial"
    mkdir -p "$dir/amalgamation.partial"
    if ! (cd "$dir/amalgamation.partial" && "$dir/src/configure" && make sqlite3.c shell.c) \
        >"$dir/amalgamation.log" 2>&1; then
        tail -n 5 "$dir/amalgamation.log" >&2
        return 1
    fi
    mv "$dir/amalgamation.partial" "$dir/amalgamation"
}

prepare() {
    name=$1
    dir="$CACHE/$name"
    if [ ! -d "$dir/src" ]; then
        if ! ls "$dir"/download/*.orig.tar.* >/dev/null 2>&1; then
            enable_deb_src
            download "$dir" "$name" || return 1
        fi
        extract "$dir" || return 1
    fi
    if [ "$name" = sqlite3 ]; then
        make_amalgamation "$dir" || return 1
    fi
    echo "$dir/src"
}

status=0
for name in "$@"; do
    mkdir -p "$CACHE/$name"
    # parallel test runs share the cache: one of them fetches, the others wait and find it ready
    exec 9>"$CACHE/$name/.lock"
    command -v flock >/dev/null 2>&1 && flock 9
    if ! prepare "$name"; then
        echo "fetch_corpus: could not fetch $name (details in $CACHE/$name/fetch.log)" >&2
        status=1
    fi
    exec 9>&-
done
exit $status
