#!/bin/sh
# SPDX-License-Identifier: MIT
# Doxygen INPUT_FILTER for the public headers (docs/Doxyfile.in). The headers use /** ... */
# before declarations; two more things render with this filter, without changing the headers:
#  - the comment that opens each header becomes its @file documentation (Doxygen lists a
#    file's functions only when the file itself is documented);
#  - a plain comment after code on the same line (an enum value's or a struct field's
#    "/* ... */") becomes a member comment "/**< ... */".
exec sed -e '1s|^/\* |/** @file\
 * |' -e 's|^\([ \t]*[^ \t/*#].*[^ \t]\)\([ \t]*\)/\*\([^*]\)|\1\2/**<\3|' "$1"
