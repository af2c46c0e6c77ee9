#!/bin/sh
# usage: render.sh TEMPLATE KEY=VALUE... > OUT    (replaces @KEY@ with VALUE)
set -eu
t=$1; shift
cmd="cat \"$t\""
for kv in "$@"; do k=${kv%%=*}; v=${kv#*=}
  v=$(printf '%s' "$v" | sed 's/[\/&|]/\\&/g')
  cmd="$cmd | sed \"s|@$k@|$v|g\""
done
eval "$cmd" | { out=$(cat); if printf '%s' "$out" | grep -q '@[A-Z_]*@'; then echo "unreplaced: $(printf '%s' "$out" | grep -o '@[A-Z_]*@' | sort -u | tr '\n' ' ')" >&2; exit 1; fi; printf '%s\n' "$out"; }
