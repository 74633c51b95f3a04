#!/usr/bin/env bash
# Build the four local images without any container registry:
#
#   sandbox-mesh/base:bookworm                debootstrap + docker import (or BASE_IMAGE)
#   sandbox-mesh/runtime:local                Python 3 + Node.js + runner, for sandboxes
#   sandbox-mesh/runtime-datascience:local    runtime + numpy, pandas, scipy, matplotlib
#                                             (the "datascience" variant of python)
#   sandbox-mesh/services:local               the project in /opt/venv, for the services
#
# Each image carries the label sandbox-mesh.inputs = sha256 over its inputs
# (Dockerfile, files copied in, extra CA certs, parent image id, ...). When
# the tagged image already has the same value the build is skipped.
#
# Knobs (environment):
#   BASE_IMAGE             use this image (pulled if absent) as the base instead
#                          of debootstrapping one, e.g. debian:bookworm-slim
#   DEBIAN_MIRROR          Debian mirror URL for debootstrap and apt in the
#                          images; default: taken from the host's apt sources
#   DEBIAN_SECURITY_MIRROR mirror for <suite>-security; default: from the
#                          host's apt sources, none when it has no such entry;
#                          set it to an empty string to leave security out
#   EXTRA_CA_DIR           *.crt files trusted inside the images
#                          (default /usr/local/share/ca-certificates)
#   PIP                    pip used on the host to build the services' wheels
#                          and download the data-science wheels
#                          (default .venv/bin/pip)
#   FORCE=1                rebuild even when the inputs did not change
set -euo pipefail

# Bump to rebuild the base image (its inputs are only mirror, suite and this).
BASE_RECIPE_VERSION=1
SUITE=bookworm

BASE_TAG=sandbox-mesh/base:bookworm
RUNTIME_TAG=sandbox-mesh/runtime:local
DATASCIENCE_TAG=sandbox-mesh/runtime-datascience:local
SERVICES_TAG=sandbox-mesh/services:local
INPUTS_LABEL=sandbox-mesh.inputs
ROLE_LABEL=sandbox-mesh.role

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD_DIR="$ROOT/.build"
EXTRA_CA_DIR=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
PIP=${PIP:-$ROOT/.venv/bin/pip}
FORCE=${FORCE:-0}
export DOCKER_BUILDKIT=0   # the docker CLI here has no buildx

SUMMARY=()

log() { echo "build: $*" >&2; }
die() { echo "build: ERROR: $*" >&2; exit 1; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
record() { # tag status start
    local line
    line=$(printf '%-40s %-11s %s' "$1" "$2" "$(elapsed "$3")")
    SUMMARY+=("$line")
    echo "== $line" >&2
}

# --- apt sources of the host --------------------------------------------

# Print the first http(s) URI of an enabled "deb" entry for suite $1 in the
# host's apt sources (deb822 *.sources first, then one-line *.list).
host_mirror_for() {
    local want=$1 f uri
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk -v want="$want" '
            function flush() {
                if (!done && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") &&
                    tolower(enabled) != "no") {
                    n = split(uris, u, " ")
                    for (i = 1; i <= n; i++)
                        if (u[i] ~ /^https?:\/\//) { print u[i]; done = 1; exit }
                }
                types = ""; uris = ""; suites = ""; enabled = ""
            }
            { gsub(/\t/, " ") }
            /^ *#/ { next }
            /^ *$/ { flush(); next }
            /^Types:/   { sub(/^Types: */, "");   types = $0;   next }
            /^URIs:/    { sub(/^URIs: */, "");    uris = $0;    next }
            /^Suites:/  { sub(/^Suites: */, "");  suites = $0;  next }
            /^Enabled:/ { sub(/^Enabled: */, ""); enabled = $0; next }
            END { flush() }' "$f")
        if [ -n "$uri" ]; then echo "${uri%/}"; return 0; fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        uri=$(awk -v want="$want" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == want && $i ~ /^https?:\/\//) { print $i; exit }
            }' "$f")
        if [ -n "$uri" ]; then echo "${uri%/}"; return 0; fi
    done
    return 1
}

# --- helpers ------------------------------------------------------------

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null; }

image_inputs() {
    docker image inspect -f "{{ index .Config.Labels \"$INPUTS_LABEL\" }}" "$1" 2>/dev/null || true
}

up_to_date() { # tag hash
    [ "$FORCE" != 1 ] && [ "$(image_inputs "$1")" = "$2" ]
}

# sha256 over every file below $1: relative path, mode and content.
hash_tree() {
    (
        cd "$1"
        find . -type f -printf '%m %p\n' | LC_ALL=C sort
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
    ) | sha256sum | cut -d' ' -f1
}

# Copy extra CA certificates (*.crt, sub-folders kept) into $1, which is
# created even when there are none.
stage_cas() {
    local dest=$1
    mkdir -p "$dest"
    if [ -d "$EXTRA_CA_DIR" ]; then
        (cd "$EXTRA_CA_DIR" && find -L . -type f -name '*.crt' -exec cp --parents -L -t "$dest" {} +)
        find "$dest" -type d -exec chmod 0755 {} +
        find "$dest" -type f -exec chmod 0644 {} +
    fi
    log "extra CA certificates: $(find "$dest" -type f | wc -l) from $EXTRA_CA_DIR"
}

# Copy a source tree without caches or build leftovers.
copy_tree() { # src dest
    mkdir -p "$2"
    tar -C "$1" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
        --exclude=.pytest_cache -cf - . | tar -C "$2" -xf -
}

remove_dangling() {
    # Only images we built (they all carry the role label) and only dangling
    # ones, i.e. previous builds whose tag moved on.
    docker image prune -f --filter "label=$ROLE_LABEL=image" >/dev/null || true
}

# --- base ---------------------------------------------------------------

TMP_ROOT=""
cleanup_tmp() {
    [ -n "$TMP_ROOT" ] && [ -d "$TMP_ROOT" ] || return 0
    # A failed debootstrap can leave proc/sys (or a bind-mounted dev) mounted.
    awk -v p="$TMP_ROOT/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    if awk -v p="$TMP_ROOT/" 'index($2, p) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        log "WARNING: $TMP_ROOT still has mounts; not removing it"
    else
        rm -rf --one-file-system "$TMP_ROOT"
    fi
    TMP_ROOT=""
}
trap cleanup_tmp EXIT

build_base() {
    local start
    start=$(now)
    if [ -n "${BASE_IMAGE:-}" ]; then
        if ! image_id "$BASE_IMAGE" >/dev/null; then
            log "pulling $BASE_IMAGE"
            docker pull "$BASE_IMAGE"
        fi
        if [ "$(image_id "$BASE_IMAGE")" = "$(image_id "$BASE_TAG" || true)" ]; then
            record "$BASE_TAG" "up to date" "$start"
        else
            docker tag "$BASE_IMAGE" "$BASE_TAG"
            record "$BASE_TAG" "tagged" "$start"
        fi
        return 0
    fi

    local mirror security hash
    mirror=${DEBIAN_MIRROR:-$(host_mirror_for "$SUITE" || true)}
    [ -n "$mirror" ] || die "no Debian mirror: set DEBIAN_MIRROR or add a '$SUITE' entry to the host's apt sources"
    mirror=${mirror%/}
    if [ "${DEBIAN_SECURITY_MIRROR+set}" = set ]; then
        security=${DEBIAN_SECURITY_MIRROR%/}
    else
        security=$(host_mirror_for "$SUITE-security" || true)
    fi
    hash=$(printf 'base recipe=%s suite=%s mirror=%s security=%s\n' \
        "$BASE_RECIPE_VERSION" "$SUITE" "$mirror" "$security" | sha256sum | cut -d' ' -f1)
    if up_to_date "$BASE_TAG" "$hash"; then
        record "$BASE_TAG" "up to date" "$start"
        return 0
    fi

    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] ||
        die "debootstrap is not installed (run scripts/ensure_docker.sh)"
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"

    TMP_ROOT=$(mktemp -d "${TMPDIR:-/var/tmp}/sandbox-mesh-base.XXXXXX")
    local rootfs="$TMP_ROOT/rootfs"
    log "debootstrap --variant=minbase $SUITE from $mirror"
    PATH="$PATH:/usr/sbin:/sbin" debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" \
        >"$TMP_ROOT/debootstrap.log" 2>&1 || {
        tail -n 30 "$TMP_ROOT/debootstrap.log" >&2
        die "debootstrap failed"
    }

    # apt sources inside the image: the same mirror, plus updates/security.
    {
        echo "deb $mirror $SUITE main"
        echo "deb $mirror $SUITE-updates main"
        [ -z "$security" ] || echo "deb $security $SUITE-security main"
    } >"$rootfs/etc/apt/sources.list"
    # Keep later installs small, as the official slim images do.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/sandbox-mesh-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/sandbox-mesh-clean" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
    # Nothing of the build host inside the image.
    : >"$rootfs/etc/resolv.conf"
    echo localhost >"$rootfs/etc/hostname"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    find "$rootfs/usr/share/doc" -mindepth 1 -type f ! -name copyright -delete 2>/dev/null || true

    log "docker import -> $BASE_TAG"
    tar --numeric-owner --xattrs -C "$rootfs" -cf - . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        --change "LABEL $ROLE_LABEL=image" \
        --change "LABEL $INPUTS_LABEL=$hash" \
        --message "debootstrap --variant=minbase $SUITE" \
        - "$BASE_TAG" >/dev/null
    cleanup_tmp
    remove_dangling
    record "$BASE_TAG" "built" "$start"
}

# --- runtime ------------------------------------------------------------

build_runtime() {
    local start ctx parent hash
    start=$(now)
    [ -f "$HERE/runtime/runner.py" ] || die "images/runtime/runner.py is missing"
    ctx="$BUILD_DIR/runtime"
    rm -rf "$ctx"
    copy_tree "$HERE/runtime" "$ctx"
    rm -rf "$ctx/ca"
    stage_cas "$ctx/ca"
    parent=$(image_id "$BASE_TAG") || die "$BASE_TAG is missing"
    hash=$( { echo "parent=$parent"; hash_tree "$ctx"; } | sha256sum | cut -d' ' -f1)
    if up_to_date "$RUNTIME_TAG" "$hash"; then
        record "$RUNTIME_TAG" "up to date" "$start"
        return 0
    fi
    log "docker build -> $RUNTIME_TAG"
    docker build --build-arg "BASE_IMAGE=$BASE_TAG" --label "$INPUTS_LABEL=$hash" \
        -t "$RUNTIME_TAG" "$ctx"
    remove_dangling
    record "$RUNTIME_TAG" "built" "$start"
}

# --- runtime-datascience ------------------------------------------------

# pip --platform values for the image's Python: manylinux wheels up to the
# glibc of Debian bookworm (2.36), on the host's architecture (the engine
# runs images of its own architecture).
BOOKWORM_GLIBC_MINOR=36
wheel_platforms() {
    local arch minor
    arch=$(uname -m)
    echo "--platform manylinux2014_$arch"
    for minor in $(seq 17 "$BOOKWORM_GLIBC_MINOR"); do
        echo "--platform manylinux_2_${minor}_$arch"
    done
}

build_runtime_datascience() {
    local start ctx parent hash
    start=$(now)
    ctx="$BUILD_DIR/runtime-datascience"
    rm -rf "$ctx"
    mkdir -p "$ctx"
    cp "$HERE/runtime-datascience/Dockerfile" "$HERE/runtime-datascience/requirements.txt" "$ctx/"
    parent=$(image_id "$RUNTIME_TAG") || die "$RUNTIME_TAG is missing"
    # The wheels follow from the pinned requirements.txt, so they are left
    # out of the hash and only downloaded when the image is built.
    hash=$( { echo "parent=$parent"; hash_tree "$ctx"; } | sha256sum | cut -d' ' -f1)
    if up_to_date "$DATASCIENCE_TAG" "$hash"; then
        record "$DATASCIENCE_TAG" "up to date" "$start"
        return 0
    fi

    [ -x "$PIP" ] || die "$PIP not found (run 'make setup' or set PIP)"
    # Downloaded on the host, whose pip knows the package index and trusts
    # the CA, for the image's Python (CPython 3.11, Linux), binary only.
    log "pip download -> $ctx/wheels"
    # shellcheck disable=SC2046  # one word per option and value
    "$PIP" download --quiet --only-binary=:all: --implementation cp --python-version 3.11 \
        --abi cp311 $(wheel_platforms) --dest "$ctx/wheels" -r "$ctx/requirements.txt"

    log "docker build -> $DATASCIENCE_TAG"
    docker build --build-arg "RUNTIME_IMAGE=$RUNTIME_TAG" --label "$INPUTS_LABEL=$hash" \
        -t "$DATASCIENCE_TAG" "$ctx"
    rm -rf "$ctx/wheels"
    remove_dangling
    record "$DATASCIENCE_TAG" "built" "$start"
}

# --- services -----------------------------------------------------------

build_services() {
    local start ctx parent hash scratch
    start=$(now)
    ctx="$BUILD_DIR/services"
    rm -rf "$ctx"
    mkdir -p "$ctx/src"
    cp "$HERE/services/Dockerfile" "$ctx/Dockerfile"
    copy_tree "$ROOT/services" "$ctx/src/services"
    copy_tree "$ROOT/stubs" "$ctx/src/stubs"
    cp "$ROOT/pyproject.toml" "$ctx/src/pyproject.toml"
    stage_cas "$ctx/ca"
    parent=$(image_id "$BASE_TAG") || die "$BASE_TAG is missing"
    # The wheels follow from pyproject.toml (pinned) and the sources, so they
    # are left out of the hash and only built when the image is.
    hash=$( { echo "parent=$parent"; hash_tree "$ctx"; } | sha256sum | cut -d' ' -f1)
    if up_to_date "$SERVICES_TAG" "$hash"; then
        record "$SERVICES_TAG" "up to date" "$start"
        return 0
    fi

    [ -x "$PIP" ] || die "$PIP not found (run 'make setup' or set PIP)"
    # Wheels are built on the host, whose pip knows the package index and
    # trusts the CA; the image then installs with --no-index. A scratch copy
    # keeps setuptools' build/ and *.egg-info out of the repo and the context.
    scratch="$BUILD_DIR/services-wheel-src"
    rm -rf "$scratch"
    cp -a "$ctx/src" "$scratch"
    log "pip wheel -> $ctx/wheels"
    "$PIP" wheel --quiet --wheel-dir "$ctx/wheels" "$scratch"
    rm -rf "$scratch"

    log "docker build -> $SERVICES_TAG"
    docker build --build-arg "BASE_IMAGE=$BASE_TAG" --label "$INPUTS_LABEL=$hash" \
        -t "$SERVICES_TAG" "$ctx"
    remove_dangling
    record "$SERVICES_TAG" "built" "$start"
}

# --- main ---------------------------------------------------------------

docker info >/dev/null 2>&1 || die "docker engine not reachable (run scripts/ensure_docker.sh)"
mkdir -p "$BUILD_DIR"
build_base
build_runtime
build_runtime_datascience
build_services

echo "images:"
for line in "${SUMMARY[@]}"; do echo "  $line"; done
