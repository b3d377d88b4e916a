# Sourced by scripts/test after scripts/lib.sh.
# MongoDB for caas-adapters' `mongo` contract suites. No MongoDB server can be
# installed on these machines, so nothing is started here: the live suite runs
# only when CAAS_TEST_MONGO_URL points at a replica set someone else runs (a
# single-node one will do). Otherwise this says so plainly; the skipped suite is
# never counted as passed, and it does not fail the run either, even with
# CAAS_REQUIRE_INTEGRATION=1 (unlike the engines this script can provision).
if [[ -z "${CAAS_TEST_MONGO_URL:-}" ]]; then
  step "SKIPPED: the live MongoDB suite did not run (CAAS_TEST_MONGO_URL is not set; no MongoDB server can be installed here) — not counted as passed"
else
  step "MongoDB: the live suite runs against CAAS_TEST_MONGO_URL"
fi
