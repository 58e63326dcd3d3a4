#!/usr/bin/env bash
# Release notes in Markdown from a release.env: every pin, component pins linked to their source.
#   .github/scripts/release-notes.sh release.env > notes.md
# Pins are classified as e2e_harness/release.py does: branch:<name> -> /tree/<name>,
# Go pseudo-version -> /commit/<its 12-hex commit>, commit hash -> /commit/<hash>,
# anything else (a release tag) -> /tree/<tag>.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 RELEASE_ENV" >&2
  exit 2
fi
release_env=$1
if [[ ! -r $release_env ]]; then
  echo "$0: cannot read $release_env" >&2
  exit 1
fi

declare -A repo=(
  [SERVER_VERSION]=https://github.com/riotkit-org/backup-repository
  [CONTROLLER_VERSION]=https://github.com/riotkit-org/backup-maker-controller
  [BACKUP_MAKER_VERSION]=https://github.com/riotkit-org/br-backup-maker
  [PGBR_VERSION]=https://github.com/riotkit-org/br-pgbr
)

pseudo='^v[0-9]+\.[0-9]+\.[0-9]+-([0-9A-Za-z.]+\.)?(0\.)?[0-9]{14}-([0-9a-f]{12})$'
commit='^[0-9a-f]{7,40}$'
branch='^branch:(.+)$'

link() {  # link REPO PIN
  local url=$1 pin=$2
  if [[ $pin =~ $branch ]]; then
    echo "$url/tree/${BASH_REMATCH[1]}"
  elif [[ $pin =~ $pseudo ]]; then
    echo "$url/commit/${BASH_REMATCH[3]}"
  elif [[ $pin =~ $commit ]]; then
    echo "$url/commit/$pin"
  else
    echo "$url/tree/$pin"
  fi
}

components=()
platform=()
while IFS= read -r line || [[ -n $line ]]; do
  line=${line%$'\r'}
  line="${line#"${line%%[![:space:]]*}"}"          # leading whitespace
  [[ -z $line || $line == \#* ]] && continue
  line=${line#export }
  [[ $line == *=* ]] || { echo "$0: $release_env: not KEY=value: $line" >&2; exit 1; }
  key=${line%%=*}
  key="${key%"${key##*[![:space:]]}"}"              # trailing whitespace
  value=${line#*=}
  value="${value#"${value%%[![:space:]]*}"}"
  if [[ $value == \"*\" || $value == \'*\' ]]; then
    value=${value:1:${#value}-2}
  else
    value=${value%%[[:space:]]#*}                    # inline comment
    value="${value%"${value##*[![:space:]]}"}"
  fi
  if [[ -n ${repo[$key]:-} ]]; then
    name=${repo[$key]##*/}
    components+=("- **$name** (\`$key\`): [\`$value\`]($(link "${repo[$key]}" "$value"))")
  else
    platform+=("- \`$key\`: \`$value\`")
  fi
done < "$release_env"

echo "Tested together by the e2e harness with these pins (\`release.env\`)."
echo
echo "## Components"
echo
if [[ ${#components[@]} -gt 0 ]]; then printf '%s\n' "${components[@]}"; else echo "(none)"; fi
echo
echo "## Platform"
echo
if [[ ${#platform[@]} -gt 0 ]]; then printf '%s\n' "${platform[@]}"; else echo "(none)"; fi
