#!/usr/bin/env bash
# Build kube-apiserver, etcd and kubectl from the pinned Go modules in this directory.
#
# Usage: tools/k8sbin/build.sh [BIN_DIR]
#
#   K8S_VERSION      Kubernetes version to build (default 1.36.3); must equal the k8s.io/kubernetes
#                    version pinned in tools/k8sbin/go.mod, otherwise the script fails.
#   BIN_DIR          output directory (default: $OEC_K8S_BIN_DIR, else
#                    ${XDG_CACHE_HOME:-$HOME/.cache}/oec-operator/k8s-v$K8S_VERSION).
#
# Only missing binaries are built. Each one is linked to a temporary name in BIN_DIR and then
# renamed, so an interrupted build never leaves a truncated binary behind. Needs Go (>= the go.mod
# `go` directive) and access to the Go module proxy; go.mod + go.sum are used read-only.
# The last line printed on stdout is BIN_DIR.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
K8S_VERSION="${K8S_VERSION#v}"
BIN_DIR="${1:-${OEC_K8S_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oec-operator/k8s-v$K8S_VERSION}}"
MIN_FREE_GIB="${OEC_K8S_MIN_FREE_GIB:-4}"

MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CGO_ENABLED=0

log() { printf '[k8sbin] %s\n' "$*" >&2; }
die() { printf '[k8sbin] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found in PATH (need Go >= $(awk '/^go /{print $2}' "$MODULE_DIR/go.mod"))"
cd "$MODULE_DIR"

pinned="$(go list -mod=readonly -m -f '{{.Version}}' k8s.io/kubernetes)" || die "cannot read k8s.io/kubernetes from $MODULE_DIR/go.mod"
if [[ "$pinned" != "v$K8S_VERSION" ]]; then
    die "K8S_VERSION=$K8S_VERSION but $MODULE_DIR/go.mod pins k8s.io/kubernetes $pinned; update go.mod/go.sum (see docs) or unset K8S_VERSION"
fi
major="${K8S_VERSION%%.*}"
minor="${K8S_VERSION#*.}"
minor="${minor%%.*}"

# Same version stamping as the upstream release build (hack/lib/version.sh), for both packages.
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    k8s_ldflags+=" -X $pkg.gitTreeState=clean"
done

# name -> Go package (etcd: the server module's main package, at the version Kubernetes pins).
declare -A PKG=(
    [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
    [etcd]=go.etcd.io/etcd/server/v3
    [kubectl]=k8s.io/kubernetes/cmd/kubectl
)
ORDER=(etcd kube-apiserver kubectl)

mkdir -p "$BIN_DIR"
BIN_DIR="$(cd "$BIN_DIR" && pwd)"

# One build at a time per BIN_DIR (a second caller waits, then finds the binaries present).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$BIN_DIR/.build.lock"
    if ! flock -n 9; then
        log "another build is running for $BIN_DIR; waiting for it"
        flock 9
    fi
fi

missing=()
for name in "${ORDER[@]}"; do
    [[ -x "$BIN_DIR/$name" ]] || missing+=("$name")
done

if ((${#missing[@]} == 0)); then
    log "all binaries present for v$K8S_VERSION"
else
    free_kib="$(df -Pk "$BIN_DIR" | awk 'NR==2 {print $4}')"
    gocache="$(go env GOCACHE)"
    mkdir -p "$gocache"
    cache_free_kib="$(df -Pk "$gocache" | awk 'NR==2 {print $4}')"
    ((cache_free_kib < free_kib)) && free_kib="$cache_free_kib"
    need_kib=$((MIN_FREE_GIB * 1024 * 1024))
    if ((free_kib < need_kib)); then
        die "only $((free_kib / 1024)) MiB free for $BIN_DIR / GOCACHE $gocache; a cold build needs ~${MIN_FREE_GIB} GiB (module cache ~0.75 GB + GOCACHE ~2.4 GB + binaries ~190 MB); override with OEC_K8S_MIN_FREE_GIB"
    fi
    log "building ${missing[*]} (Kubernetes v$K8S_VERSION, $(go version | awk '{print $3}')) into $BIN_DIR; $((free_kib / 1024 / 1024)) GiB free"
    total_start=$SECONDS
    for name in "${missing[@]}"; do
        tmp="$BIN_DIR/.$name.tmp.$$"
        trap 'rm -f "$tmp"' EXIT
        start=$SECONDS
        if [[ "$name" == etcd ]]; then
            ldflags="-s -w"
        else
            ldflags="$k8s_ldflags"
        fi
        log "go build $name (${PKG[$name]}) ..."
        go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$tmp" "${PKG[$name]}"
        mv -f "$tmp" "$BIN_DIR/$name"
        trap - EXIT
        log "built $name in $((SECONDS - start)) s ($(du -h "$BIN_DIR/$name" | cut -f1))"
    done
    log "done in $((SECONDS - total_start)) s"
fi

printf '%s\n' "$BIN_DIR"
