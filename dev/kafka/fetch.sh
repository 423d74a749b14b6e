#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars (and runtime dependencies) from Maven Central into
# .cache/kafka/libs. Idempotent: a stamp file records the pom's hash; nothing happens when it matches.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
libs="${KAFKA_LIBS_DIR:-$root/.cache/kafka/libs}"
stamp="$libs/.complete"
pom="$here/pom.xml"

want="$(sha256sum "$pom" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

command -v mvn >/dev/null 2>&1 || { echo "fetch: mvn not found; run 'make sysdeps'" >&2; exit 1; }

echo "fetch: downloading Apache Kafka jars into $libs" >&2
rm -rf "$libs"
mkdir -p "$libs"
log="$(mktemp)"
# Maven's console writes colour codes even in batch mode: its output is shown only when it fails
if ! mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$libs" >"$log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$log" >&2
    rm -f "$log"
    exit 1
fi
rm -f "$log"

# Sanity: the broker jar and exactly one slf4j-api (2.x) must be present.
ls "$libs"/kafka_2.13-*.jar >/dev/null
if ls "$libs"/slf4j-api-1.* >/dev/null 2>&1; then
    echo "fetch: slf4j-api 1.x ended up in $libs; check pom.xml dependencyManagement" >&2
    exit 1
fi
echo "$want" >"$stamp"
echo "fetch: done ($(ls "$libs"/*.jar | wc -l) jars)" >&2
