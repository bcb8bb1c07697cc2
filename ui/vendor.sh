#!/bin/sh
# Vendor the pages' front-end libraries into labctl/ui/static/vendor/<package>/: the exact
# versions package-lock.json pins, installed with `npm ci --ignore-scripts` (no package's
# own scripts run) in a scratch folder, then only each package's distributed browser build
# and its licence copied. The wheel ships them, so the pages work offline and never load
# anything from elsewhere. Run by `make vendor`; commit what it changes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target="$here/../labctl/ui/static/vendor"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$here/.npmrc" "$scratch/"
(cd "$scratch" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
modules="$scratch/node_modules"

# copy PACKAGE FILE...: each FILE of the package (a path inside it) into vendor/PACKAGE/
copy() {
    package=$1
    shift
    rm -rf "${target:?}/$package"
    mkdir -p "$target/$package"
    cp "$modules/$package/LICENSE" "$target/$package/LICENSE"
    for file in "$@"; do
        cp "$modules/$package/$file" "$target/$package/"
    done
}

copy @xterm/xterm lib/xterm.js css/xterm.css
copy @xterm/addon-fit lib/addon-fit.js
copy cytoscape dist/cytoscape.min.js
copy layout-base layout-base.js
copy cose-base cose-base.js
copy cytoscape-fcose cytoscape-fcose.js

# The pages load these by path: a version whose files moved fails here, not in a browser.
for file in @xterm/xterm/xterm.js @xterm/xterm/xterm.css @xterm/addon-fit/addon-fit.js \
            cytoscape/cytoscape.min.js layout-base/layout-base.js cose-base/cose-base.js \
            cytoscape-fcose/cytoscape-fcose.js; do
    test -s "$target/$file" || { echo "vendor.sh: $file is missing" >&2; exit 1; }
done
echo "vendored into labctl/ui/static/vendor/:"
node -e 'const lock = require(process.argv[1]); for (const [path, p] of Object.entries(lock.packages))
  if (path) console.log(`  ${path.replace("node_modules/", "")} ${p.version} (${p.license})`)' "$here/package-lock.json"
