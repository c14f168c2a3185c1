#!/usr/bin/env bash
# Lays out the distribution (run by the dist module's package phase):
#   build-dist.sh REPO_ROOT BUILD_DIR DIST_DIR MODULES JVM_FLAGS
# DIST_DIR/{bin/troupe, lib/, conf/, runtime/} and DIST_DIR.tar.gz. The jlink'd runtime is cached in
# BUILD_DIR/runtime and rebuilt only when the module list or the JDK changes.
set -euo pipefail
root="$1"; build="$2"; dist="$3"; modules="$4"; flags="$5"

# The JDK Maven runs on (JAVA_HOME when set), else the one on PATH.
jdk_bin="${JAVA_HOME:+$JAVA_HOME/bin/}"
stamp="$modules $("${jdk_bin}java" -version 2>&1 | head -1)"
runtime="$build/runtime"
if [ ! -x "$runtime/bin/java" ] || [ "$(cat "$build/runtime.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$runtime"
  start=$(date +%s)
  "${jdk_bin}jlink" --add-modules "$modules" --strip-debug --no-header-files --no-man-pages --compress=2 --output "$runtime"
  echo "$stamp" > "$build/runtime.stamp"
  echo "build-dist: jlink runtime ($modules) in $(( $(date +%s) - start )) s"
fi

tmp="$dist.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/lib" "$tmp/conf"
cp -a "$runtime" "$tmp/runtime"
cp "$build"/lib/*.jar "$tmp/lib/"
cp "$root/cluster-config/reference.conf" "$root/cluster-config/local.conf" "$root/cluster-config/multi-host.conf" "$tmp/conf/"
cp -r "$root/cluster-config/examples" "$root/cluster-config/k8s" "$tmp/conf/"
sed "s|@TROUPE_JVM_FLAGS@|$flags|" "$root/dist/src/bin/troupe" > "$tmp/bin/troupe"
chmod 755 "$tmp/bin/troupe"
rm -rf "$dist"
mv "$tmp" "$dist"
tar -czf "$dist.tar.gz" -C "$(dirname "$dist")" "$(basename "$dist")"
echo "build-dist: $dist ($(du -sh "$dist" | cut -f1)), $dist.tar.gz ($(du -sh "$dist.tar.gz" | cut -f1))"
