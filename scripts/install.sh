#!/bin/sh
# make install: node_modules for package-lock.json, with onnxruntime-node's optional provider
# files ($1: skip, or cuda12 for the CUDA 12 provider), then the stamp $2 that make checks.
#
# The working node_modules is replaced only by a complete new one: a failed install (no network,
# a CUDA download refused, Ctrl-C) leaves it as it was, so nothing needs `rm -rf node_modules` first.
#   same lockfile, another variant -> only onnxruntime-node's install script runs, in place
#   otherwise                      -> npm ci in a staging folder, then one rename swaps it in
set -eu
ort=$1
stamp=$2
lock_id=${stamp##*.installed-}
lock_id=${lock_id%-*}
if ls node_modules/.installed-"$lock_id"-* >/dev/null 2>&1; then
  echo "install: node_modules matches package-lock.json; onnxruntime-node's install script with ONNXRUNTIME_NODE_INSTALL=$ort"
  (cd node_modules/onnxruntime-node && ONNXRUNTIME_NODE_INSTALL="$ort" node script/install.js)
else
  staging=.install-staging
  rm -rf "$staging"
  mkdir "$staging"
  cp package.json package-lock.json "$staging"/
  echo "install: npm ci (ONNXRUNTIME_NODE_INSTALL=$ort) in $staging/; node_modules is replaced once it succeeds"
  (cd "$staging" && ONNXRUNTIME_NODE_INSTALL="$ort" npm ci --no-audit --no-fund)
  rm -rf node_modules.previous
  if [ -d node_modules ]; then mv node_modules node_modules.previous; fi
  mv "$staging/node_modules" node_modules
  rm -rf node_modules.previous "$staging"
fi
rm -f node_modules/.installed-*
touch "$stamp"
