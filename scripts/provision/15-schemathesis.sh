# Sourced by scripts/test after scripts/lib.sh.
# schemathesis, which checks the live API against its own /openapi.json,
# installed from hash-pinned wheels into a cached venv.
pinned_venv schemathesis scripts/provision/schemathesis-requirements.txt
export CAAS_SCHEMATHESIS="$PINNED_VENV/bin/st"
