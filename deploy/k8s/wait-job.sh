#!/bin/sh
# wait-job.sh JOB [TIMEOUT_S]: waits for a Kubernetes Job to finish. Exit 0 when it completes;
# 1 as soon as it fails (an index that used up backoffLimitPerIndex fails the Job at once with
# maxFailedIndexes: 0), with the failed indexes and the last log lines; 2 on timeout.
# `kubectl wait --for=condition=complete` alone keeps waiting on a failed Job until its timeout.
set -eu
job=$1
timeout_s=${2:-172800}
every=${WAIT_EVERY_S:-30}
start=$(date +%s)
while :; do
  conditions=$(kubectl get "job/$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')
  case " $conditions " in
    *" Complete "* | *" SuccessCriteriaMet "*)
      echo "job/$job: complete"
      exit 0 ;;
    *" Failed "* | *" FailureTarget "*)
      echo "job/$job: failed; failed indexes: $(kubectl get "job/$job" -o jsonpath='{.status.failedIndexes}')" >&2
      kubectl logs "job/$job" --tail=30 >&2 || true
      exit 1 ;;
  esac
  if [ $(($(date +%s) - start)) -ge "$timeout_s" ]; then
    echo "job/$job: not finished after ${timeout_s}s (conditions: ${conditions:-none})" >&2
    exit 2
  fi
  sleep "$every"
done
