# Sourced by the end-to-end tests that boot User-Mode Linux (linux_test.sh,
# linux_deterministic_test.sh, linux_scenarios_test.sh): the kernel they need, and their checks.
#   require_uml_kernel   exits 77 (skipped) without EMMCSIM_UML_KERNEL, or 1 when
#                        EMMCSIM_REQUIRE_UML=1 (CI, where scripts/test builds one)
#   pass TEXT / fail TEXT   one check; report_checks prints the count and fails if any failed

require_uml_kernel() {
  if [ -z "${EMMCSIM_UML_KERNEL:-}" ] || [ ! -x "${EMMCSIM_UML_KERNEL:-}" ]; then
    if [ "${EMMCSIM_REQUIRE_UML:-0}" = 1 ]; then
      echo "FAIL: EMMCSIM_UML_KERNEL does not name a kernel (scripts/uml-kernel builds one)"
      exit 1
    fi
    echo "SKIP: no User-Mode Linux kernel (set EMMCSIM_UML_KERNEL=\$(scripts/uml-kernel))"
    exit 77
  fi
}

failures=0 checks=0
pass() { checks=$((checks + 1)); echo "ok   $*"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL $*"; }
report_checks() {
  echo "$checks checks, $failures failed"
  [ $failures -eq 0 ]
}
