#!/bin/sh
# copy-report.sh [DEST]: copies the report the merge Job left on the shared volume
# (/shared/out/report, links resolved) to DEST (default ./report), through a short-lived pod
# that mounts the volume read-only; the pod is removed afterwards.
set -eu
dest=${1:-./report}
pod=genre-report-reader
kubectl run "$pod" --image=busybox:1.36.1 --restart=Never --overrides='{
  "apiVersion": "v1",
  "spec": {
    "securityContext": {"runAsNonRoot": true, "runAsUser": 10001},
    "containers": [{"name": "reader", "image": "busybox:1.36.1", "command": ["sleep", "900"],
      "volumeMounts": [{"name": "shared", "mountPath": "/shared", "readOnly": true}]}],
    "volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": "genre-pipeline-shared", "readOnly": true}}]
  }}'
trap 'kubectl delete pod "$pod" --wait=false >/dev/null 2>&1 || true' EXIT
kubectl wait --for=condition=Ready "pod/$pod" --timeout=300s
kubectl cp "$pod:/shared/out/report" "$dest"
echo "report: $dest/report.html"
