#!/usr/bin/env bash
# docent on AWS in one command: the Terraform in this directory, the image in ECR, the ECS
# services (or Lambda functions) rolled onto it, a smoke test, and a way back.
#
#   deploy/aws/deploy.sh COMMAND --env staging|production [options]
#
#   plan      terraform init, workspace <env>, plan into deploy/aws/<env>.tfplan
#   push      build the image (tag: the git commit), push it to the environment's ECR
#             repository, wait for its scan and fail on findings of a blocked severity
#   apply     push when the image is not in ECR yet, plan, apply that plan, then put the ECS
#             services (or Lambda functions) on the new image and wait until they are stable;
#             on a first deploy it creates the ECR repository first (-target=aws_ecr_repository.docent)
#   smoke     GET /health and /ready on the api_url output until both answer 200
#   rollback  put the services back on the newest earlier task definition revision (Lambda:
#             the newest earlier published version) whose image differs from the one left
#   destroy   terraform destroy (needs --yes)
#
# Options:
#   --env NAME        staging or production (required)
#   --tag TAG         image tag (default: DOCENT_IMAGE_TAG, else `git rev-parse HEAD`)
#   --var-file PATH   tfvars (default: deploy/aws/env/<env>.tfvars)
#   --dry-run         print every command that would change something, run none of them;
#                     read-only queries (terraform output, aws describe/list) still run so the
#                     printed commands name real resources
#   --replace ADDR    plan/apply: have Terraform replace this resource (repeatable), e.g.
#                     module.data.random_password.db to rotate a generated secret
#   --allow-dirty     push an image built from a checkout with uncommitted changes
#   --yes             confirm destroy
#
# Environment: DOCENT_SCAN_FAIL_ON (severities that fail `push`, default CRITICAL; "none" to
# report only), DOCENT_SMOKE_TIMEOUT (seconds, default 180), DOCENT_ECS_WAIT_TIMEOUT (seconds,
# default 1200). Names come from `terraform output` (see deploy/aws/outputs.tf); nothing is
# hard-coded. Every command is safe to run again: push skips an image already in ECR, apply
# converges, rollback does nothing when the services already run another image.
# docs/operations.md is the runbook.
set -euo pipefail

PROG=deploy/aws/deploy.sh
TF=deploy/aws
die() {
  echo "$PROG: $*" >&2
  exit 1
}
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

# Run from the repository root: the paths below (and in the printed commands) are relative to it.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

COMMAND=${1:-}
case "$COMMAND" in
plan | push | apply | smoke | rollback | destroy) shift ;;
-h | --help | help) usage ;;
"") echo "$PROG: a command is required: plan, push, apply, smoke, rollback or destroy" >&2 && usage ;;
*) die "unknown command '$COMMAND' (plan, push, apply, smoke, rollback or destroy)" ;;
esac

ENV_NAME=""
TAG="${DOCENT_IMAGE_TAG:-}"
TAG_GIVEN=0
[ -n "$TAG" ] && TAG_GIVEN=1
VAR_FILE=""
DRY=0
ALLOW_DIRTY=0
YES=0
REPLACE=()
while [ $# -gt 0 ]; do
  case "$1" in
  --env) [ $# -ge 2 ] || die "--env needs a value (staging or production)"; ENV_NAME=$2; shift 2 ;;
  --env=*) ENV_NAME=${1#--env=}; shift ;;
  --tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG=$2; TAG_GIVEN=1; shift 2 ;;
  --tag=*) TAG=${1#--tag=}; TAG_GIVEN=1; shift ;;
  --var-file) [ $# -ge 2 ] || die "--var-file needs a path"; VAR_FILE=$2; shift 2 ;;
  --var-file=*) VAR_FILE=${1#--var-file=}; shift ;;
  --dry-run) DRY=1; shift ;;
  --replace) [ $# -ge 2 ] || die "--replace needs a resource address"; REPLACE+=("-replace=$2"); shift 2 ;;
  --replace=*) REPLACE+=("-replace=${1#--replace=}"); shift ;;
  --allow-dirty) ALLOW_DIRTY=1; shift ;;
  --yes) YES=1; shift ;;
  -h | --help) usage ;;
  *) die "unknown option '$1'" ;;
  esac
done

case "$ENV_NAME" in
staging | production) ;;
"") die "--env is required: staging or production" ;;
*) die "--env must be staging or production, not '$ENV_NAME'" ;;
esac
# Relative to deploy/aws (terraform runs with -chdir there); absolute paths stay as they are.
if [ -z "$VAR_FILE" ]; then
  VAR_FILE="env/$ENV_NAME.tfvars"
  VAR_FILE_SHOWN="$TF/$VAR_FILE"
else
  [ -f "$VAR_FILE" ] || die "--var-file $VAR_FILE: no such file"
  VAR_FILE="$(cd "$(dirname "$VAR_FILE")" && pwd)/$(basename "$VAR_FILE")"
  VAR_FILE_SHOWN=$VAR_FILE
fi
PLAN_FILE="$ENV_NAME.tfplan"

# --- printing and running ---------------------------------------------------------------------

# The command as one shell line (each word quoted only when it needs it).
shown() {
  local out="" w
  for w in "$@"; do
    if [[ "$w" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
      out+="$w "
    elif [[ "$w" != *"'"* ]]; then
      out+="'$w' "
    else
      out+="$(printf '%q' "$w") "
    fi
  done
  echo "${out% }"
}

# run CMD...: a command that changes something: printed as `+ CMD`; run unless --dry-run.
run() {
  echo "+ $(shown "$@")"
  [ "$DRY" = 1 ] || "$@"
}

# query CMD...: a read-only command whose output decides what comes next; run even with
# --dry-run (shown on stderr as `? CMD`).
query() {
  echo "? $(shown "$@")" >&2
  "$@"
}

need() { # need TOOL WHAT-FOR
  command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH; it is needed to $2"
}

# --- checks before anything runs ----------------------------------------------------------------

need terraform "plan and apply the infrastructure (Terraform >= 1.6, or set PATH to OpenTofu's terraform shim)"
[ -f "$TF/main.tf" ] || die "$TF/main.tf not found: run this from a docent checkout"
if [[ "$VAR_FILE" == /* ]]; then tfvars_path=$VAR_FILE; else tfvars_path="$TF/$VAR_FILE"; fi
[ -f "$tfvars_path" ] || die "$VAR_FILE_SHOWN not found: copy $TF/env/$ENV_NAME.tfvars.example to it and fill it in (it is gitignored)"

# Every variable variables.tf declares without a default must be set in the tfvars (image_tag
# excepted: this script passes it).
required_vars() {
  awk '
    /^variable "[^"]+"/ { match($0, /"[^"]+"/); name = substr($0, RSTART + 1, RLENGTH - 2); has_default = 0; depth = 0 }
    name != "" { line = $0; depth += gsub(/\{/, "{", line) - gsub(/\}/, "}", line) }
    name != "" && /^  default[ \t]*=/ { has_default = 1 }
    name != "" && depth == 0 && /\}/ { if (!has_default) print name; name = "" }
  ' "$TF/variables.tf"
}
if [ -f "$TF/variables.tf" ]; then
  for v in $(required_vars); do
    [ "$v" = image_tag ] && continue
    grep -Eq "^[[:space:]]*${v}[[:space:]]*=" "$tfvars_path" ||
      die "$VAR_FILE_SHOWN does not set '$v' (required by $TF/variables.tf; see $TF/env/$ENV_NAME.tfvars.example)"
  done
fi
# The tfvars must describe this environment, so a copied file cannot deploy over the other one.
tfvars_env=$(sed -nE 's/^[[:space:]]*environment[[:space:]]*=[[:space:]]*"([^"]*)".*/\1/p' "$tfvars_path" | head -1)
if [ -n "$tfvars_env" ] && [ "$tfvars_env" != "$ENV_NAME" ]; then
  die "$VAR_FILE_SHOWN sets environment = \"$tfvars_env\", not \"$ENV_NAME\""
fi

case "$COMMAND" in
push | apply | destroy | plan)
  if [ -z "$TAG" ]; then
    need git "name the image after the commit (or pass --tag)"
    TAG=$(git rev-parse HEAD 2>/dev/null) || die "no image tag: not a git checkout; pass --tag or set DOCENT_IMAGE_TAG"
  fi
  ;;
esac
[ -z "$TAG" ] || [[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "--tag '$TAG' is not a valid image tag"
case "$COMMAND" in
push | apply | rollback) need aws "talk to ECR, ECS and Lambda (AWS CLI v2)" ;;
smoke) need curl "call the API" ;;
esac

# --- Terraform ----------------------------------------------------------------------------------

TF_VARS=(-var-file="$VAR_FILE" -var "image_tag=$TAG")

# Which environment deploy/aws/.terraform was last initialised for (backends may differ).
INIT_MARK="$TF/.terraform/docent-environment"

tf_init() {
  local backend=()
  [ -f "$TF/env/$ENV_NAME.backend.hcl" ] && backend=(-backend-config="env/$ENV_NAME.backend.hcl")
  run terraform -chdir="$TF" init -input=false -reconfigure "${backend[@]}"
  run terraform -chdir="$TF" workspace select -or-create "$ENV_NAME"
  if [ "$DRY" = 0 ]; then
    mkdir -p "$TF/.terraform"
    echo "$ENV_NAME" >"$INIT_MARK"
  elif [ "$(cat "$INIT_MARK" 2>/dev/null)" != "$ENV_NAME" ]; then
    echo "# not initialised for $ENV_NAME here: the outputs below are unknown to this dry run" >&2
  fi
}

# The commands that only read outputs (push, smoke, rollback) initialise when this checkout was
# not initialised for this environment yet (a fresh CI runner).
ensure_init() {
  [ "$(cat "$INIT_MARK" 2>/dev/null)" = "$ENV_NAME" ] || tf_init
}

# out NAME: a Terraform output of this environment's workspace; empty when unknown (no state
# yet, or not initialised here).
out() {
  echo "? TF_WORKSPACE=$ENV_NAME terraform -chdir=$TF output -raw $1" >&2
  TF_WORKSPACE=$ENV_NAME terraform -chdir="$TF" output -raw "$1" 2>/dev/null || true
}

# must NAME: an output that has to have a value now.
must() {
  local v
  v=$(out "$1")
  [ -n "$v" ] || die "terraform output $1 has no value for $ENV_NAME: has 'deploy.sh apply --env $ENV_NAME' run?"
  printf '%s' "$v"
}

# applied NAME: an output once applied. A dry run did not apply: an output still unknown then
# reads "(terraform output NAME)".
applied() {
  local v
  v=$(out "$1")
  if [ -z "$v" ]; then
    [ "$DRY" = 1 ] || die "terraform output $1 has no value after the apply"
    v="(terraform output $1)"
  fi
  printf '%s' "$v"
}

# The compute shape: from the outputs once applied, else from the tfvars (Terraform's default
# is ecs).
compute() {
  if [ -n "$(out ecs_cluster_name)" ]; then
    echo ecs
  elif [ -n "$(out lambda_api_function_name)" ]; then
    echo lambda
  else
    local c
    c=$(sed -nE 's/^[[:space:]]*compute[[:space:]]*=[[:space:]]*"([^"]*)".*/\1/p' "$tfvars_path" | head -1)
    echo "${c:-ecs}"
  fi
}

# --- the image ----------------------------------------------------------------------------------

# image_in_ecr REPO_URL REGION: whether REPO_URL:$TAG exists.
image_in_ecr() {
  local cmd=(aws ecr describe-images --region "$2" --repository-name "${1#*/}"
    --image-ids "imageTag=$TAG" --query 'imageDetails[0].imageDigest' --output text)
  echo "? $(shown "${cmd[@]}")" >&2
  "${cmd[@]}" >/dev/null 2>&1
}

push_image() { # push_image REPO_URL REGION
  local repo=$1 region=$2 image="$1:$TAG"
  if image_in_ecr "$repo" "$region"; then
    # Pushed before (tags are immutable), maybe by a release whose gate failed: gate it again.
    echo "$image is already in ECR; nothing to push"
    scan_gate "$repo" "$region"
    return 0
  fi
  need docker "build and push the image"
  if [ "$TAG_GIVEN" = 0 ] && [ "$ALLOW_DIRTY" = 0 ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    die "the checkout has uncommitted changes, so an image tagged $TAG would not be that commit: commit them, or pass --allow-dirty"
  fi
  # An image built already as docent:<tag> (release.yml builds once for every environment) is
  # pushed as it is; otherwise it is built here from the checkout.
  if query docker image inspect --format '{{.Id}}' "docent:$TAG" >/dev/null 2>&1; then
    run docker tag "docent:$TAG" "$image"
  else
    run docker build --pull --label "org.opencontainers.image.revision=$TAG" -t "$image" -f Dockerfile .
  fi
  echo "+ aws ecr get-login-password --region $region | docker login --username AWS --password-stdin ${repo%%/*}"
  if [ "$DRY" = 0 ]; then
    aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "${repo%%/*}"
  fi
  run docker push "$image"
  scan_gate "$repo" "$region"
}

# The repository scans on push; a finding of a severity in DOCENT_SCAN_FAIL_ON fails the push,
# and apply, which gates an image already in ECR again before deploying it.
scan_gate() {
  local repo=$1 region=$2 fail_on=${DOCENT_SCAN_FAIL_ON:-CRITICAL} sev n bad=""
  run aws ecr wait image-scan-complete --region "$region" --repository-name "${repo#*/}" --image-id "imageTag=$TAG"
  [ "$DRY" = 1 ] && return 0
  [ "$fail_on" = none ] && fail_on=""
  for sev in CRITICAL HIGH MEDIUM LOW INFORMATIONAL UNDEFINED; do
    n=$(query aws ecr describe-image-scan-findings --region "$region" --repository-name "${repo#*/}" \
      --image-id "imageTag=$TAG" --query "imageScanFindings.findingSeverityCounts.$sev" --output text)
    [ "$n" = None ] && n=0
    echo "scan: $sev $n"
    if [ "$n" -gt 0 ] && [[ ",${fail_on}," == *",$sev,"* ]]; then bad+="$sev=$n "; fi
  done
  [ -z "$bad" ] || die "the image scan of $repo:$TAG found ${bad% } (DOCENT_SCAN_FAIL_ON=$fail_on): see 'aws ecr describe-image-scan-findings --repository-name ${repo#*/} --image-id imageTag=$TAG'"
}

# --- ECS ----------------------------------------------------------------------------------------

# task_def CLUSTER SERVICE REGION: the service's task definition ARN.
task_def() {
  query aws ecs describe-services --region "$3" --cluster "$1" --services "$2" \
    --query 'services[0].taskDefinition' --output text
}

# family_of ARN / revision_of ARN (…:task-definition/FAMILY:REV).
family_of() {
  local f=${1##*/}
  echo "${f%:*}"
}
revision_of() { echo "${1##*:}"; }

# image_of TASK_DEF REPO REGION: the image of its container that runs docent (sidecars aside).
image_of() {
  query aws ecs describe-task-definition --region "$3" --task-definition "$1" \
    --query "taskDefinition.containerDefinitions[?starts_with(image, '$2:')].image | [0]" --output text
}

ecs_roll_out() { # ecs_roll_out CLUSTER REGION SERVICE...
  local cluster=$1 region=$2 svc current family target state
  shift 2
  local -A new_td=()
  for svc in "$@"; do
    current=$(task_def "$cluster" "$svc" "$region") || current=""
    if [ -n "$current" ] && [ "$current" != None ]; then
      family=$(family_of "$current")
    else
      [ "$DRY" = 1 ] || die "ECS service $svc not found in cluster $cluster"
      family="(the task definition family of $svc)"
    fi
    # The family's newest ACTIVE revision: the one Terraform just registered. A dry run did not
    # apply, so it names the family, which ECS resolves to the same.
    if [ "$DRY" = 1 ]; then
      target=$family
    else
      target=$(query aws ecs describe-task-definition --region "$region" --task-definition "$family" \
        --query 'taskDefinition.taskDefinitionArn' --output text)
    fi
    new_td[$svc]=$target
    run aws ecs update-service --region "$region" --cluster "$cluster" --service "$svc" \
      --task-definition "$target" --force-new-deployment --query 'service.serviceName' --output text
  done
  ecs_wait "$cluster" "$region" "$@"
  [ "$DRY" = 1 ] && return 0
  # Stable is not enough: the deployment circuit breaker settles a failed deployment back on
  # the old revision. The service must be on the new revision, its primary deployment
  # completed.
  for svc in "$@"; do
    # shellcheck disable=SC2016 # backquotes are JMESPath literals
    state=$(query aws ecs describe-services --region "$region" --cluster "$cluster" --services "$svc" \
      --query 'services[0].[taskDefinition, deployments[?status==`PRIMARY`] | [0].rolloutState]' --output text)
    [ "$state" = "${new_td[$svc]}	COMPLETED" ] ||
      die "ECS service $svc did not settle on ${new_td[$svc]} (service, primary deployment: $state); the deployment circuit breaker may have rolled it back: see 'aws ecs describe-services --cluster $cluster --services $svc' and the service's events"
  done
  echo "ECS services $* run their new task definitions"
}

ecs_wait() { # ecs_wait CLUSTER REGION SERVICE...
  local cluster=$1 region=$2
  shift 2
  # `aws ecs wait services-stable` gives up after 10 minutes; a larger fleet may need longer.
  local limit=${DOCENT_ECS_WAIT_TIMEOUT:-1200} start=$SECONDS
  until run aws ecs wait services-stable --region "$region" --cluster "$cluster" --services "$@"; do
    [ $((SECONDS - start)) -lt "$limit" ] || die "ECS services $* not stable after ${limit}s (DOCENT_ECS_WAIT_TIMEOUT)"
  done
}

ecs_rollback() { # ecs_rollback CLUSTER REGION REPO SERVICE...
  local cluster=$1 region=$2 repo=$3 svc current family rev bad arn img prev
  shift 3
  # Decide for every service first, so a service without an earlier revision stops the
  # rollback before anything moved.
  local moved=() targets=()
  for svc in "$@"; do
    current=$(task_def "$cluster" "$svc" "$region") || current=""
    [ -n "$current" ] && [ "$current" != None ] || die "ECS service $svc not found in cluster $cluster"
    family=$(family_of "$current")
    rev=$(revision_of "$current")
    bad=$(image_of "$current" "$repo" "$region")
    if [ "$TAG_GIVEN" = 1 ] && [ "$bad" != "$repo:$TAG" ]; then
      echo "ECS service $svc already runs $bad (revision $rev), not $repo:$TAG: nothing to roll back"
      continue
    fi
    prev=""
    # Newest first (sorted here too: not every endpoint honours --sort); --family-prefix also
    # matches longer family names, so compare exactly.
    for arn in $(query aws ecs list-task-definitions --region "$region" --family-prefix "$family" \
      --status ACTIVE --sort DESC --query 'taskDefinitionArns' --output text | tr '\t' '\n' | sort -t: -k7,7 -rn); do
      [ "$(family_of "$arn")" = "$family" ] || continue
      [ "$(revision_of "$arn")" -lt "$rev" ] || continue
      img=$(image_of "$arn" "$repo" "$region")
      if [ "$img" != "$bad" ]; then
        prev=$arn
        break
      fi
    done
    [ -n "$prev" ] || die "ECS service $svc: no ACTIVE revision of $family before $rev runs another image than $bad"
    echo "ECS service $svc: $family:$rev ($bad) -> $family:$(revision_of "$prev") ($img)"
    moved+=("$svc")
    targets+=("$prev")
  done
  [ ${#moved[@]} -gt 0 ] || return 0
  local i
  for i in "${!moved[@]}"; do
    run aws ecs update-service --region "$region" --cluster "$cluster" --service "${moved[$i]}" \
      --task-definition "${targets[$i]}" --query 'service.serviceName' --output text
  done
  ecs_wait "$cluster" "$region" "${moved[@]}"
}

# --- Lambda -------------------------------------------------------------------------------------

lambda_roll_out() { # lambda_roll_out REGION IMAGE FUNCTION...
  local region=$1 image=$2 fn
  shift 2
  for fn in "$@"; do
    run aws lambda update-function-code --region "$region" --function-name "$fn" --image-uri "$image" \
      --publish --query 'Version' --output text
    run aws lambda wait function-updated-v2 --region "$region" --function-name "$fn"
  done
}

lambda_rollback() { # lambda_rollback REGION REPO FUNCTION...
  local region=$1 repo=$2 fn bad v img prev
  shift 2
  local moved=() targets=()
  for fn in "$@"; do
    bad=$(query aws lambda get-function --region "$region" --function-name "$fn" --query 'Code.ImageUri' --output text)
    if [ "$TAG_GIVEN" = 1 ] && [ "$bad" != "$repo:$TAG" ]; then
      echo "Lambda function $fn already runs $bad, not $repo:$TAG: nothing to roll back"
      continue
    fi
    prev=""
    # shellcheck disable=SC2016 # backquotes are JMESPath literals
    for v in $(query aws lambda list-versions-by-function --region "$region" --function-name "$fn" \
      --query 'Versions[?Version!=`$LATEST`].Version' --output text | tr '\t' '\n' | sort -rn); do
      img=$(query aws lambda get-function --region "$region" --function-name "$fn" --qualifier "$v" \
        --query 'Code.ImageUri' --output text)
      if [ "$img" != "$bad" ]; then
        prev=$img
        break
      fi
    done
    [ -n "$prev" ] || die "Lambda function $fn: no published version runs another image than $bad"
    echo "Lambda function $fn: $bad -> $prev (version $v)"
    moved+=("$fn")
    targets+=("$prev")
  done
  local i
  for i in "${!moved[@]}"; do
    lambda_roll_out "$region" "${targets[$i]}" "${moved[$i]}"
  done
}

# --- the commands -------------------------------------------------------------------------------

cmd_plan() {
  tf_init
  run terraform -chdir="$TF" plan -input=false "${TF_VARS[@]}" "${REPLACE[@]}" -out="$PLAN_FILE"
}

cmd_push() {
  local region repo
  ensure_init
  region=$(must region)
  repo=$(out ecr_repository_url)
  [ -n "$repo" ] || die "no ECR repository for $ENV_NAME yet (terraform output ecr_repository_url is empty): run 'deploy.sh apply --env $ENV_NAME', whose first run creates it and pushes"
  push_image "$repo" "$region"
}

cmd_apply() {
  tf_init
  local region repo shape
  repo=$(out ecr_repository_url)
  if [ -z "$repo" ]; then
    # First deploy: the repository first, so the services start on an image that exists.
    echo "no ECR repository for $ENV_NAME yet: creating it first"
    run terraform -chdir="$TF" apply -input=false -auto-approve "${TF_VARS[@]}" -target=aws_ecr_repository.docent
    repo=$(out ecr_repository_url)
  fi
  region=$(out region)
  if [ -n "$repo" ] && [ -n "$region" ]; then
    push_image "$repo" "$region"
  else
    [ "$DRY" = 1 ] || die "terraform output ecr_repository_url / region have no value after creating the repository"
    echo "+ $PROG push --env $ENV_NAME --tag $TAG   # once the repository exists"
  fi
  run terraform -chdir="$TF" plan -input=false "${TF_VARS[@]}" "${REPLACE[@]}" -out="$PLAN_FILE"
  run terraform -chdir="$TF" apply -input=false "$PLAN_FILE"
  shape=$(compute)
  region=$(applied region)
  local api worker
  if [ "$shape" = ecs ]; then
    local cluster
    cluster=$(applied ecs_cluster_name)
    api=$(applied api_service_name)
    worker=$(applied worker_service_name)
    ecs_roll_out "$cluster" "$region" "$api" "$worker"
  else
    api=$(applied lambda_api_function_name)
    worker=$(applied lambda_worker_function_name)
    repo=$(applied ecr_repository_url)
    lambda_roll_out "$region" "$repo:$TAG" "$api" "$worker"
  fi
  echo "$ENV_NAME runs $TAG; check it with: $PROG smoke --env $ENV_NAME"
}

cmd_smoke() {
  local url path limit=${DOCENT_SMOKE_TIMEOUT:-180} code body
  ensure_init
  url=$(must api_url)
  url=${url%/}
  for path in /health /ready; do
    if [ "$DRY" = 1 ]; then
      echo "+ curl -sS --max-time 10 $url$path   # until 200, at most ${limit}s"
      continue
    fi
    local start=$SECONDS
    body=$(mktemp)
    while :; do
      code=$(curl -sS -o "$body" -w '%{http_code}' --max-time 10 "$url$path" 2>/dev/null) || code=000
      [ "$code" = 200 ] && break
      if [ $((SECONDS - start)) -ge "$limit" ]; then
        echo "$PROG: smoke: GET $url$path answered $code after ${limit}s: $(head -c 500 "$body")" >&2
        rm -f "$body"
        exit 1
      fi
      sleep 5
    done
    echo "smoke: GET $url$path 200 $(head -c 300 "$body")"
    rm -f "$body"
  done
}

cmd_rollback() {
  local region repo a b c
  ensure_init
  region=$(must region)
  repo=$(must ecr_repository_url)
  if [ "$(compute)" = ecs ]; then
    a=$(must ecs_cluster_name)
    b=$(must api_service_name)
    c=$(must worker_service_name)
    ecs_rollback "$a" "$region" "$repo" "$b" "$c"
  else
    b=$(must lambda_api_function_name)
    c=$(must lambda_worker_function_name)
    lambda_rollback "$region" "$repo" "$b" "$c"
  fi
  echo "check it with: $PROG smoke --env $ENV_NAME"
}

cmd_destroy() {
  [ "$YES" = 1 ] || [ "$DRY" = 1 ] ||
    die "destroy deletes every resource of $ENV_NAME (the database keeps a final snapshot if the Terraform says so): pass --yes"
  tf_init
  run terraform -chdir="$TF" destroy -input=false -auto-approve "${TF_VARS[@]}"
}

[ ${#REPLACE[@]} -eq 0 ] || [ "$COMMAND" = plan ] || [ "$COMMAND" = apply ] || die "--replace applies to plan and apply only"
[ "$DRY" = 1 ] && echo "# dry run: $COMMAND --env $ENV_NAME (tag ${TAG:-none}); nothing below is run" >&2
"cmd_$COMMAND"
