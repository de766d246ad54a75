# Source me: puts Node 24 LTS first on PATH when the machine's node is older.
# Node 24 comes from the npm registry's `node` package (a binary inside a
# registry package), cached under ~/.cache so later runs reuse it.
if ! node -v 2>/dev/null | grep -Eq '^v(2[4-9]|[3-9][0-9])\.'; then
  _n24="${NODE24_HOME:-$HOME/.cache/node24}"
  if ! "$_n24/node_modules/node/bin/node" -v 2>/dev/null | grep -q '^v24\.'; then
    mkdir -p "$_n24"
    npm i --prefix "$_n24" --no-audit --no-fund --silent node@24 >/dev/null 2>&1 || echo "node24: install failed" >&2
  fi
  export PATH="$_n24/node_modules/node/bin:$PATH"
  unset _n24
fi
