#!/usr/bin/env bash
# The built demo (web-demo/dist) is committed so that `tandem serve` gives a working page on a
# fresh clone with no Node. This rebuilds it from the locked sources into a scratch directory and
# fails if the result differs from the dist/ in the work tree, or if dist/ differs from what is
# committed. Fix a failure with: (cd web-demo && npm run build) and commit web-demo/dist.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
npx --no-install vite build --outDir "$scratch/dist" --emptyOutDir --logLevel warn

if ! diff -r dist "$scratch/dist" >/dev/null 2>&1; then
  echo "web-demo/dist is out of date with its sources; run (cd web-demo && npm run build) and commit web-demo/dist:" >&2
  diff -rq dist "$scratch/dist" >&2 || true
  exit 1
fi

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  if [ -n "$(git status --porcelain -- dist)" ]; then
    echo "web-demo/dist differs from the committed one (uncommitted build):" >&2
    git status --short -- dist >&2
    exit 1
  fi
fi
echo "web-demo/dist is up to date"
