#!/usr/bin/env bash
# Sets the image of one container through the kubeupdate REST gateway and, with
# wait, follows the rollout on the streaming route; the job fails unless the
# rollout completes. Every outcome, errors included, sets the outputs and
# writes the job summary, so an `if: failure()` step can read `state` and `reason`.
#
# Called by action.yml with the inputs as environment variables:
#   KUBEUPDATE_URL                 gateway base URL (required)
#   KUBEUPDATE_TARGET              namespace/deployment/container (required)
#   KUBEUPDATE_IMAGE               the new image (required)
#   KUBEUPDATE_WAIT                true|false (default true)
#   KUBEUPDATE_TIMEOUT             longest wait: 300, 90s, 5m, 1h30m (default 5m)
#   KUBEUPDATE_ROLLBACK_ON_FAILURE true|false (default false; needs wait)
#   KUBEUPDATE_REASON              recorded as the change cause
#   KUBEUPDATE_AUDIENCE            audience of the GitHub OIDC token (default kubeupdate)
#   KUBEUPDATE_TOKEN               a static token instead of OIDC (optional)
# and GitHub's ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN (set with `id-token: write`),
# GITHUB_OUTPUT and GITHUB_STEP_SUMMARY. Needs bash, curl and jq (all on
# GitHub-hosted runners).
#
# Outputs (README.md has the table): state, reason, image, previous-image,
# failed-image, changed, revision, duration, http-status, message, request-id,
# rollout-id.
set -uo pipefail # no -e: every failure must still reach finish()

workdir=$(mktemp -d)
watch=""  # the pid of the streaming watch, while one runs
update="" # the pid of the POST, while it runs
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
  # A child killed before it exec'd its command would run this trap too.
  [[ $BASHPID == "$$" ]] || return 0
  [[ -n $watch ]] && kill "$watch" 2>/dev/null
  [[ -n $update ]] && kill "$update" 2>/dev/null
  rm -rf "$workdir"
}
trap cleanup EXIT

# --- the outcome, filled in as the step goes, written once by finish() --------

state=ERROR reason="" message="" http_status="" request_id=""
image_now="" previous="" failed_image="" changed="" revision="" duration="" rollout_id=""
target=${KUBEUPDATE_TARGET:-} image=${KUBEUPDATE_IMAGE:-}

# output NAME VALUE appends to GITHUB_OUTPUT (the delimiter form holds any value).
output() {
  local delimiter="kubeupdate_${RANDOM}${RANDOM}${RANDOM}"
  printf '%s<<%s\n%s\n%s\n' "$1" "$delimiter" "$2" "$delimiter" >>"${GITHUB_OUTPUT:-/dev/null}"
}

# A workflow command's message must not break its line.
escape() {
  local text=${1//'%'/%25}
  text=${text//$'\r'/%0D}
  printf '%s' "${text//$'\n'/%0A}"
}

# Markdown table cells: no pipes or newlines, and `code` that cannot close early.
cell() { local text=${1//|/\\|}; printf '%s' "${text//$'\n'/ }"; }
# shellcheck disable=SC2016 # the backquotes are Markdown's
code() { [[ -n $1 ]] && printf '`%s`' "$(cell "${1//\`/\'}")"; }

headline() {
  case $state in
    COMPLETE) echo "rolled out" ;;
    SET) echo "image set (the rollout was not waited for)" ;;
    UNCHANGED) echo "unchanged: the container already ran this image" ;;
    FAILED) echo "the rollout failed (not rolled back)" ;;
    TIMED_OUT) echo "the rollout did not finish in time (not rolled back)" ;;
    ROLLED_BACK) echo "the rollout failed and was rolled back" ;;
    PROGRESSING) echo "still rolling out" ;;
    *) case $http_status in
      400) echo "refused: invalid request" ;;
      401) echo "refused: not authenticated" ;;
      403) echo "refused: permission denied" ;;
      404) echo "refused: not found" ;;
      409) echo "refused: the Deployment kept changing, retry later" ;;
      429) echo "refused: too many requests, retry later" ;;
      5*) echo "failed: the server could not do it (HTTP $http_status)" ;;
      *) case $reason in
        INVALID_INPUT) echo "not attempted: an input is not valid" ;;
        OIDC_TOKEN_UNAVAILABLE) echo "not attempted: no GitHub OIDC token" ;;
        UNREACHABLE) echo "not attempted: the server cannot be reached" ;;
        *) echo "failed: no answer from the server" ;;
      esac ;;
    esac ;;
  esac
}

# finish writes the outputs and the summary, reports, and ends the step:
# success for COMPLETE, SET and UNCHANGED, failure for everything else.
finish() {
  output state "$state"
  output reason "$reason"
  output image "$image_now"
  output previous-image "$previous"
  output failed-image "$failed_image"
  output changed "$changed"
  output revision "$revision"
  output duration "$duration"
  output http-status "$http_status"
  output message "$message"
  output request-id "$request_id"
  output rollout-id "$rollout_id"
  local namespace=${target%%/*} rest=${target#*/}
  {
    echo "### kubeupdate: $(cell "${target:-?}") $(headline)"
    echo ""
    echo "| Deployment | $(cell "${namespace:-?}/${rest%%/*}") |"
    echo "|---|---|"
    echo "| Container | $(cell "${rest#*/}") |"
    echo "| Requested image | $(code "$image") |"
    [[ -n $image_now ]] && echo "| Image running now | $(code "$image_now") |"
    [[ -n $previous ]] && echo "| Previous image | $(code "$previous") |"
    [[ -n $failed_image ]] && echo "| Failed image | $(code "$failed_image") |"
    [[ -n $revision ]] && echo "| Revision | $revision |"
    [[ -n $duration ]] && echo "| Duration | $duration |"
    echo "| State | $state |"
    [[ -n $reason ]] && echo "| Reason | $(cell "$reason") |"
    [[ -n $http_status ]] && echo "| HTTP status | $http_status |"
    [[ -n $request_id ]] && echo "| Request id | $(code "$request_id") |"
    [[ -n $rollout_id ]] && echo "| Followed after a hand-over | guarded rollout $(code "$rollout_id") |"
    [[ -n $message ]] && printf '\n%s\n' "$(cell "$message")"
    echo ""
  } >>"${GITHUB_STEP_SUMMARY:-/dev/null}"
  case $state in
    COMPLETE | SET | UNCHANGED)
      echo "kubeupdate: $target $(headline)${message:+: $message}"
      exit 0
      ;;
  esac
  echo "::error title=kubeupdate: $(escape "$target $(headline)")::$(escape "${message:-$reason}")"
  exit 1
}

# refuse REASON MESSAGE: the step ends before anything was sent.
refuse() {
  reason=$1 message=$2
  finish
}

# --- inputs -------------------------------------------------------------------

bool() {
  case "${2,,}" in
    true | yes | 1) printf -v "$1" true ;;
    false | no | 0 | "") printf -v "$1" false ;;
    *) refuse INVALID_INPUT "$1 must be true or false, got '$2'" ;;
  esac
}

# seconds DURATION prints the seconds of 300, 90s, 5m, 1h30m, 250ms (the CLI's
# and the gateway's grammar: kubeupdate.client.durations), or nothing.
seconds() {
  jq -rn --arg text "$1" '
    def unit: {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[.];
    if $text | test("^[0-9]+(\\.[0-9]+)?$") then $text | tonumber
    elif $text | test("^([0-9]+(\\.[0-9]+)?(h|ms|m|s))+$") then
      [$text | scan("([0-9]+(?:\\.[0-9]+)?)(h|ms|m|s)") | (.[0] | tonumber) * (.[1] | unit)] | add
    else empty end'
}

url=${KUBEUPDATE_URL:-}
url=${url%/}
wait=true rollback=false
bool wait "${KUBEUPDATE_WAIT:-true}"
bool rollback "${KUBEUPDATE_ROLLBACK_ON_FAILURE:-false}"
timeout=${KUBEUPDATE_TIMEOUT:-5m}
change_cause=${KUBEUPDATE_REASON:-}
audience=${KUBEUPDATE_AUDIENCE:-kubeupdate}

[[ $url =~ ^https?://[^[:space:]]+$ ]] || refuse INVALID_INPUT "url must start with http:// or https://, got '$url'"
[[ -n $image && $image != *[[:space:]]* ]] || refuse INVALID_INPUT "image must be an image reference, got '$image'"
# Kubernetes names only: they go into the URL path unescaped.
name='[a-z0-9]([-a-z0-9.]*[a-z0-9])?'
[[ $target =~ ^$name/$name/$name$ ]] || refuse INVALID_INPUT "target must be namespace/deployment/container, got '$target'"
IFS=/ read -r namespace deployment _ <<<"$target"
wait_seconds=$(seconds "$timeout")
[[ -n $wait_seconds ]] || refuse INVALID_INPUT "timeout must be a duration like 300, 90s, 5m or 1h30m, got '$timeout'"
[[ $(jq -n "$wait_seconds > 0") == true ]] || refuse INVALID_INPUT "timeout must be positive, got '$timeout'"
[[ $wait == true || $rollback == false ]] || refuse INVALID_INPUT "rollback-on-failure needs wait"

# --- credentials: a static token, else GitHub's OIDC token for the audience -----

if [[ -n ${KUBEUPDATE_TOKEN:-} ]]; then
  token=$KUBEUPDATE_TOKEN
elif [[ -n ${ACTIONS_ID_TOKEN_REQUEST_URL:-} && -n ${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-} ]]; then
  # Headers go through files, never argv, so `ps` shows no secret.
  token=$(curl -sS --fail --max-time 30 --get --data-urlencode "audience=$audience" \
    -H @<(printf 'Authorization: bearer %s\n' "$ACTIONS_ID_TOKEN_REQUEST_TOKEN") \
    "$ACTIONS_ID_TOKEN_REQUEST_URL" 2>"$workdir/oidc.err" | jq -r '.value // empty' 2>/dev/null)
  [[ -n $token ]] || refuse OIDC_TOKEN_UNAVAILABLE "cannot get a GitHub OIDC token for audience '$audience': $(head -c 300 "$workdir/oidc.err")"
else
  refuse OIDC_TOKEN_UNAVAILABLE "no GitHub OIDC token available: give the job 'permissions: id-token: write' (or pass token)"
fi
echo "::add-mask::$token"
authorization() { printf 'Authorization: Bearer %s\n' "$token"; }

body=$(jq -cn --arg image "$image" --arg reason "$change_cause" --arg timeout "${wait_seconds}s" \
  --argjson wait "$wait" --argjson rollback "$rollback" \
  '{Image: $image, Reason: $reason}
   + if $wait then {Wait: true, Timeout: $timeout, RollbackOnFailure: $rollback} else {} end')

if [[ $wait == true ]]; then
  echo "kubeupdate: setting $target to $image, waiting up to $timeout for the rollout$([[ $rollback == true ]] && echo ", rolled back if it fails")"
else
  echo "kubeupdate: setting $target to $image (not waiting for the rollout)"
fi

# --- the change, and the rollout followed on the streaming route ----------------

# The rollout as it was before this change: progress never repeats it, nor
# shows a finished rollout of its revision or older (the previous one), so the
# first progress line is about this change.
baseline=null
if [[ $wait == true ]]; then
  baseline=$(curl -sS --max-time 10 -H @<(authorization) "$url/rollout/$namespace/$deployment" 2>/dev/null |
    jq -c '.Rollout // null' 2>/dev/null) || baseline=null
  [[ -n $baseline ]] || baseline=null
fi

# The POST's budget, which a re-attach after a hand-over shares (it never grows).
budget=$(jq -n "$wait_seconds + 60 | ceil")
ends=$((SECONDS + budget))
curl -sS --max-time "$budget" -o "$workdir/answer" -D "$workdir/headers" \
  -w '%{http_code}' -X POST -H 'Content-Type: application/json' -H @<(authorization) \
  --data-binary "$body" "$url/deployment/$target" >"$workdir/status" 2>"$workdir/curl.err" &
update=$!

# shellcheck disable=SC2016 # a jq program: $r and $base are jq's
progress='def revision: .Revision // "0" | tonumber;
  .Rollout // empty | select(. != $base)
  | select(.State == "STATE_PROGRESSING" or revision > ($base // {} | revision))
  | (.Replicas // 0) as $r
  | "progress: \(.State // "STATE_UNSPECIFIED" | sub("^STATE_"; ""))"
    + " \(.UpdatedReplicas // 0)/\($r) updated, \(.AvailableReplicas // 0)/\($r) available"
    + (if .Message then " - " + .Message else "" end)'
shown=0 last=""
show_progress() { # prints the complete lines of the stream not shown yet
  local file=$workdir/watch total line
  [[ -f $file ]] || return 0
  total=$(wc -l <"$file")
  ((total > shown)) || return 0
  while IFS= read -r line; do
    if [[ $line != "$last" ]]; then
      echo "$line"
      last=$line
    fi
  done < <(head -n "$total" "$file" | tail -n +"$((shown + 1))" |
    jq -r --argjson base "$baseline" "$progress" 2>/dev/null)
  shown=$total
}

if [[ $wait == true ]]; then
  opened=0
  while kill -0 "$update" 2>/dev/null; do
    if [[ -z $watch ]] || ! kill -0 "$watch" 2>/dev/null; then
      # The stream ends at a terminal state, maybe the one before this change
      # was applied: open it again, at most once a second, while the call waits.
      show_progress
      if ((SECONDS >= opened + 1)) || [[ -z $watch ]]; then
        opened=$SECONDS shown=0
        curl -sS -N --max-time "$(jq -n "$wait_seconds + 60 | ceil")" -H @<(authorization) \
          "$url/rollout/$namespace/$deployment/watch" >"$workdir/watch" 2>/dev/null &
        watch=$!
      fi
    fi
    show_progress
    sleep 0.2
  done
  show_progress
  kill "$watch" 2>/dev/null
  wait "$watch" 2>/dev/null
  watch=""
fi

wait "$update"
curl_status=$?
update=""
http_status=$(cat "$workdir/status" 2>/dev/null)
[[ $http_status == 000 ]] && http_status=""
request_id=$(sed -n 's/^[Xx]-[Rr]equest-[Ii]d: *\([^[:space:]]*\).*/\1/p' "$workdir/headers" 2>/dev/null | tail -n 1)

field() { jq -r "$1 // empty" "$workdir/answer" 2>/dev/null; }

# --- a waited change whose server went away: follow it to its verdict -----------

# follow_guarded: the replica that followed the rollout shut down and handed it
# over (503, ROLLOUT_HANDED_OVER); GET its guarded rollout until the verdict,
# within the POST's budget. The verdict's change becomes the answer. Returns 1
# when the answer names no guarded rollout, 2 when it is kept no longer.
follow_guarded() {
  local id follow guarded=$workdir/guarded status remaining
  id=$(field .Metadata.rollout_id)
  follow=$(field .Metadata.follow)
  [[ -n $follow || -z $id ]] || follow="/rollout/$namespace/$deployment/guarded/$id"
  [[ -n $follow ]] || follow=$(field .Detail | grep -o '/rollout/[^[:space:]]*/guarded/[^[:space:]?]*' | head -n 1)
  follow=${follow%%\?*}
  # Only the route of this Deployment: the path comes from the answer.
  [[ $follow =~ ^/rollout/$namespace/$deployment/guarded/[a-z0-9][-a-z0-9.]*$ ]] || return 1
  rollout_id=${follow##*/}
  echo "kubeupdate: the server's replica shut down and handed the rollout over; following guarded rollout $rollout_id"
  while remaining=$((ends - SECONDS)); ((remaining > 0)); do
    # The server answers at `timeout` with Closed=false; leave it room to.
    status=$(curl -sS --max-time "$remaining" -o "$guarded" -w '%{http_code}' -H @<(authorization) \
      "$url$follow?wait=true&timeout=$((remaining > 4 ? remaining - 2 : 1))s" 2>/dev/null)
    case $status in
      200)
        if [[ $(jq -r '.Closed // false' "$guarded" 2>/dev/null) == true ]]; then
          jq '.Change' "$guarded" >"$workdir/answer"
          http_status=200
          return 0
        fi
        ;;
      404) return 2 ;;
      000 | 502 | 503 | 504) sleep 1 ;; # that replica went away too: ask again
      *)
        cp "$guarded" "$workdir/answer"
        http_status=$status
        return 0
        ;;
    esac
  done
  state=PROGRESSING reason=ROLLOUT_HANDED_OVER
  message="the wait ended before the verdict of guarded rollout $rollout_id; follow it: GET $follow?wait=true"
  finish
}

# watch_after_loss WHY: the answer was lost after the change may have been made,
# and no guarded rollout is known: watch the Deployment's rollout to its end,
# read the image it runs, and say what cannot be known.
watch_after_loss() {
  local last="" line remaining now
  echo "kubeupdate: $1; the change may have been made: following the Deployment's rollout (a rollback by another replica cannot be confirmed)"
  while remaining=$((ends - SECONDS)); ((remaining > 0)); do
    curl -sS -N --max-time "$remaining" -H @<(authorization) \
      "$url/rollout/$namespace/$deployment/watch" >"$workdir/rewatch" 2>/dev/null
    line=$(jq -c '.Rollout // empty' "$workdir/rewatch" 2>/dev/null | tail -n 1)
    [[ -n $line ]] && last=$line
    [[ -n $last && $(jq -r '.State' <<<"$last") =~ ^STATE_(COMPLETE|FAILED|PAUSED)$ ]] && break
    sleep 1
  done
  now=$(curl -sS --max-time 10 -H @<(authorization) "$url/deployment/$target" 2>/dev/null |
    jq -r '.Image // empty' 2>/dev/null)
  state=$(jq -r '.State // "STATE_TIMED_OUT"' <<<"${last:-null}" 2>/dev/null)
  state=${state#STATE_}
  [[ $state =~ ^(COMPLETE|FAILED|PAUSED)$ ]] || state=TIMED_OUT
  reason=$(jq -r '.Reason // empty' <<<"${last:-null}" 2>/dev/null)
  message=$(jq -r '.Message // empty' <<<"${last:-null}" 2>/dev/null)
  revision=$(jq -r '.Revision // empty' <<<"${last:-null}" 2>/dev/null)
  image_now=$now
  if [[ $now != "$image" ]]; then
    state=FAILED failed_image=$image
    message="the container runs ${now:-an image that could not be read}, not $image: the change was not made, or it was rolled back"
  fi
  message="${message:+$message }(the wait's answer was lost and the Deployment was watched instead: a rollback by another replica cannot be confirmed)"
  finish
}

if [[ $wait == true ]]; then
  if [[ $http_status == 503 && $(field .Reason) == ROLLOUT_HANDED_OVER ]]; then
    follow_guarded
    case $? in
      2) watch_after_loss "guarded rollout $rollout_id is kept no longer" ;;
    esac
  elif [[ $curl_status =~ ^(18|52|56|92)$ ]]; then
    watch_after_loss "the connection to $url broke before the answer"
  elif [[ $http_status == 503 && $(field .Reason) == SERVICE_UNAVAILABLE && $baseline != null ]]; then
    # The gateway reached the service just before the change, and lost it during it.
    watch_after_loss "the gateway lost the service during the wait"
  fi
fi

if ((curl_status != 0)) || [[ -z $http_status ]]; then
  case $curl_status in
    6 | 7) reason=UNREACHABLE ;;
    *) reason=NO_ANSWER ;; # the change may have been made: see the Deployment
  esac
  message="cannot reach $url: $(head -c 500 "$workdir/curl.err")"
  finish
fi

echo "::group::kubeupdate answer (HTTP $http_status)"
jq . "$workdir/answer" 2>/dev/null || head -c 2000 "$workdir/answer"
echo ""
echo "::endgroup::"

if [[ $http_status != 200 ]]; then
  state=ERROR
  # The stable reason of the error (ErrorInfo), else its gRPC code, else the status.
  reason=$(field .Reason)
  [[ -n $reason ]] || reason=$(field .Code)
  [[ -n $reason ]] || reason="HTTP_$http_status"
  message=$(field .Detail)
  [[ -n $message ]] || message=$(head -c 500 "$workdir/answer")
  finish
fi

previous=$(field .PreviousImage)
changed=$(field .Changed)
changed=${changed:-false}
image_now=$(field .Image)
if [[ -n $(field .Rollout) ]]; then
  state=$(field .Rollout.State)
  state=${state#STATE_}
  reason=$(field .Rollout.Reason)
  message=$(field .Rollout.Message)
  revision=$(field .Rollout.Revision)
  duration=$(field .Rollout.Duration)
  if [[ -n $duration ]]; then
    duration=$(jq -rn --arg d "$duration" '$d | rtrimstr("s") | tonumber | round
      | if . >= 3600 then "\(. / 3600 | floor)h\(. % 3600 / 60 | floor)m"
        elif . >= 60 then "\(. / 60 | floor)m\(. % 60)s" else "\(.)s" end')
  fi
  # After a rollback the container runs the restored image again.
  restored=$(field .Rollout.RestoredImage)
  failed_image=$(field .Rollout.FailedImage)
  [[ -n $restored ]] && image_now=$restored
  if [[ -z $failed_image && $state =~ ^(FAILED|TIMED_OUT)$ ]]; then
    failed_image=$image
  fi
elif [[ $changed == true ]]; then
  state=SET
else
  state=UNCHANGED
fi
finish
