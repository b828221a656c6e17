#!/bin/sh
# run.sh [MANIFEST]: the whole cluster run, in order (embed-indexed-job.yaml by default;
# embed-indexed-job-gpu.yaml for one GPU per slice). Stops at the first Job that fails.
set -eu
here=$(dirname "$0")
manifest=${1:-$here/embed-indexed-job.yaml}
kubectl apply -f "$manifest"
"$here/wait-job.sh" genre-prefetch 7200
kubectl patch job genre-embed --type=merge -p '{"spec":{"suspend":false}}'
"$here/wait-job.sh" genre-embed 172800
kubectl patch job genre-embed-merge --type=merge -p '{"spec":{"suspend":false}}'
"$here/wait-job.sh" genre-embed-merge 86400
"$here/copy-report.sh" ./report
