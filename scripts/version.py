#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Prints MAJOR.MINOR.PATCH from include/siamese/version.h, the single source of truth."""
import os
import re

here = os.path.dirname(os.path.abspath(__file__))
text = open(os.path.join(here, '..', 'include', 'siamese', 'version.h')).read()
parts = [re.search(r'#define SM_VERSION_%s (\d+)' % k, text).group(1) for k in ('MAJOR', 'MINOR', 'PATCH')]
print('.'.join(parts))
