#!/bin/sh
# SPDX-License-Identifier: MIT
# The one test of a build folder configured without cmocka (tests/meson.build): it fails, saying
# why no test program was built and how to get them.
# Usage (from tests/meson.build): cmocka_missing.sh BUILD_ROOT
echo "FAIL: cmocka was not found when $1 was configured, so no test program was built and" \
     "none ran: install libcmocka-dev (scripts/setup-debian.sh --tests) and run" \
     "meson setup --reconfigure $1 (README's test command does both)" >&2
exit 1
