#!/usr/bin/env bash
# Sets the image of one container through the kubeupdate REST gateway and, with
# wait, follows the rollout; the job fails unless the rollout completes.
#
# Called by action.yml with the inputs as environment variables:
#   KUBEUPDATE_URL                 gateway base URL (required)
#   KUBEUPDATE_TARGET              namespace/deployment/container (required)
#   KUBEUPDATE_IMAGE               the new image (required)
#   KUBEUPDATE_WAIT                true|false (default true)
#   KUBEUPDATE_TIMEOUT             longest wait: 300, 300s or 5m (default 300s)
#   KUBEUPDATE_ROLLBACK_ON_FAILURE true|false (default false; needs wait)
#   KUBEUPDATE_REASON              recorded as the change cause
#   KUBEUPDATE_AUDIENCE            audience of the GitHub OIDC token (default kubeupdate)
#   KUBEUPDATE_TOKEN               a static token instead of OIDC (optional)
#   KUBEUPDATE_POLL_INTERVAL       seconds between progress polls (default 5)
# and GitHub's ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN (set with `id-token: write`),
# GITHUB_OUTPUT and GITHUB_STEP_SUMMARY. Needs bash, curl and jq.
set -euo pipefail

fail() {
  echo "::error title=kubeupdate::$*"
  exit 1
}

# bool NAME VALUE sets NAME to true or false (not in a subshell, so fail exits).
bool() {
  case "${2,,}" in
    true | yes | 1) printf -v "$1" true ;;
    false | no | 0 | "") printf -v "$1" false ;;
    *) fail "$1 must be true or false, got '$2'" ;;
  esac
}

url=${KUBEUPDATE_URL:-}
url=${url%/}
target=${KUBEUPDATE_TARGET:-}
image=${KUBEUPDATE_IMAGE:-}
wait=true rollback=false
bool wait "${KUBEUPDATE_WAIT:-true}"
bool rollback "${KUBEUPDATE_ROLLBACK_ON_FAILURE:-false}"
timeout=${KUBEUPDATE_TIMEOUT:-300s}
reason=${KUBEUPDATE_REASON:-}
audience=${KUBEUPDATE_AUDIENCE:-kubeupdate}
poll=${KUBEUPDATE_POLL_INTERVAL:-5}

[[ $url =~ ^https?:// ]] || fail "url must start with http:// or https://, got '$url'"
[[ -n $image ]] || fail "image is required"
# Kubernetes names only: they go into the URL path unescaped.
name='[a-z0-9]([-a-z0-9.]*[a-z0-9])?'
[[ $target =~ ^$name/$name/$name$ ]] || fail "target must be namespace/deployment/container, got '$target'"
IFS=/ read -r namespace deployment _ <<<"$target"

case $timeout in
  *m) seconds=${timeout%m} ;;
  *s) seconds=${timeout%s} ;;
  *) seconds=$timeout ;;
esac
[[ $seconds =~ ^[0-9]+$ ]] || fail "timeout must be like 300, 300s or 5m, got '$timeout'"
seconds=$((10#$seconds))
[[ $timeout == *m ]] && seconds=$((seconds * 60))
((seconds > 0)) || fail "timeout must be positive, got '$timeout'"
[[ $wait == true || $rollback == false ]] || fail "rollback-on-failure needs wait"
[[ $poll =~ ^[1-9][0-9]*$ ]] || fail "poll-interval must be a whole number of seconds, got '$poll'"

# The bearer token: a static one, else GitHub's OIDC token for the audience.
if [[ -n ${KUBEUPDATE_TOKEN:-} ]]; then
  token=$KUBEUPDATE_TOKEN
elif [[ -n ${ACTIONS_ID_TOKEN_REQUEST_URL:-} && -n ${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-} ]]; then
  # Headers go through files, never argv, so `ps` shows no secret.
  token=$(curl -sS --fail --max-time 30 --get --data-urlencode "audience=$audience" \
    -H @<(printf 'Authorization: bearer %s\n' "$ACTIONS_ID_TOKEN_REQUEST_TOKEN") \
    "$ACTIONS_ID_TOKEN_REQUEST_URL" | jq -r '.value // empty') ||
    fail "cannot get a GitHub OIDC token for audience '$audience'"
  [[ -n $token ]] || fail "GitHub answered no OIDC token"
else
  fail "no GitHub OIDC token available: give the job 'permissions: id-token: write' (or pass token)"
fi
echo "::add-mask::$token"
authorization() { printf 'Authorization: Bearer %s\n' "$token"; }

body=$(jq -cn --arg image "$image" --arg reason "$reason" --arg timeout "${seconds}s" \
  --argjson wait "$wait" --argjson rollback "$rollback" \
  '{Image: $image, Reason: $reason}
   + if $wait then {Wait: true, Timeout: $timeout, RollbackOnFailure: $rollback} else {} end')

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
echo "kubeupdate: $target -> $image (wait: $wait, timeout: ${seconds}s, rollback: $rollback)"

# The update runs in the background so progress can be shown while it waits.
curl -sS --max-time $((seconds + 60)) -o "$workdir/answer" -w '%{http_code}' \
  -X POST -H 'Content-Type: application/json' -H @<(authorization) \
  --data-binary "$body" "$url/deployment/$target" >"$workdir/status" 2>"$workdir/curl.err" &
update=$!

# One line per rollout state seen, from GET /rollout/{namespace}/{deployment}.
# shellcheck disable=SC2016 # a jq program: $replicas is jq's
progress_line='.Rollout // {}
  | (.Replicas // 0) as $replicas
  | "\(.State // "STATE_UNSPECIFIED" | sub("^STATE_"; "")):"
    + " \(.UpdatedReplicas // 0)/\($replicas) updated,"
    + " \(.AvailableReplicas // 0)/\($replicas) available"
    + (if .Message then " - " + .Message else "" end)'

if [[ $wait == true ]]; then
  last=""
  while kill -0 "$update" 2>/dev/null; do
    line=$(curl -sS --max-time 10 -H @<(authorization) "$url/rollout/$namespace/$deployment" 2>/dev/null |
      jq -r "$progress_line" 2>/dev/null) || line=""
    if [[ -n $line && $line != "$last" ]]; then
      echo "progress: $line"
      last=$line
    fi
    # Wake up early when the update answers.
    for ((tick = 0; tick < poll * 10; tick++)); do
      kill -0 "$update" 2>/dev/null || break
      sleep 0.1
    done
  done
fi

wait "$update" || fail "cannot reach $url: $(cat "$workdir/curl.err")"
status=$(cat "$workdir/status")
if [[ $status != 200 ]]; then
  detail=$(jq -r '.Detail // empty' <"$workdir/answer" 2>/dev/null) || detail=""
  fail "HTTP $status: ${detail:-$(head -c 500 "$workdir/answer")}"
fi
jq . <"$workdir/answer"

field() { jq -r "$1 // empty" <"$workdir/answer"; }
previous=$(field .PreviousImage)
changed=$(field .Changed)
state=$(field .Rollout.State)
message=$(field .Rollout.Message)
{
  echo "image=$(field .Image)"
  echo "previous-image=$previous"
  echo "changed=${changed:-false}"
  echo "state=$state"
} >>"${GITHUB_OUTPUT:-/dev/null}"
{
  echo "### kubeupdate: \`$target\`"
  echo ""
  echo "| | |"
  echo "|---|---|"
  echo "| image | \`$image\` |"
  echo "| previous image | \`${previous:-?}\` |"
  echo "| changed | ${changed:-false} |"
  echo "| rollout | ${state:-not waited} ${message:+- $message} |"
} >>"${GITHUB_STEP_SUMMARY:-/dev/null}"

if [[ $wait == true ]]; then
  if [[ $state == STATE_COMPLETE ]]; then
    echo "kubeupdate: rollout complete${message:+: $message}"
  elif [[ -z $state && ${changed:-false} == false ]]; then
    echo "kubeupdate: $image was already set; nothing to roll out"
  else
    rolled_back=""
    if [[ $state == STATE_ROLLED_BACK ]]; then
      rolled_back=" (rolled back to $(field .Rollout.RestoredImage))"
    fi
    fail "rollout ${state:-without a state}: ${message:-$(field .Rollout.Reason)}$rolled_back"
  fi
fi
