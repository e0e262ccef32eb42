/* SPDX-License-Identifier: MIT */
/* libsiamese: version macros (the single source of truth; meson reads them). */
#ifndef SIAMESE_VERSION_H
#define SIAMESE_VERSION_H

#define SM_VERSION_MAJOR 0
#define SM_VERSION_MINOR 5
#define SM_VERSION_PATCH 0

/* Bumped only when the ABI breaks; it is the soname's number. */
#define SM_ABI_MAJOR 0

#define SM_VERSION_NUMBER (SM_VERSION_MAJOR * 10000 + SM_VERSION_MINOR * 100 + SM_VERSION_PATCH)

#endif
