# Shared by the packaging tests. Source it.
XLB_SKIP=77  # ctest's SKIP_RETURN_CODE

# require WHAT TEST...: each TEST a command that must succeed (e.g. "command -v rpmbuild");
# fails under CI=true, skips with the reason otherwise.
require() {
  local what=$1; shift
  local t
  for t in "$@"; do
    eval "$t" >/dev/null 2>&1 && continue
    if [[ ${CI:-} == true ]]; then
      echo "FAIL: needs $what ($t failed; CI=true: a packaging test must not skip)" >&2
      exit 1
    fi
    echo "SKIP: needs $what ($t failed; scripts/setup-deps.sh installs the tools)" >&2
    exit $XLB_SKIP
  done
}

# The tree's two programs must be built before a package is made of them.
require_built() {
  [[ -x $1/src/xlbd/xlbd && -x $1/src/xlbctl/xlbctl ]] ||
    { echo "FAIL: $1 has no built xlbd and xlbctl (cmake --build $1)" >&2; exit 1; }
}
