/* SPDX-License-Identifier: MIT */
/* The bodies of the libFuzzer targets, shared with tests/test_fuzz_regressions.c, which replays
 * every seed and every input that once crashed through the same functions in the normal build.
 *
 * Each takes one input and returns 0, or 1 when an invariant the library promises is broken (a
 * status the call does not document, a failure without a message, a text that does not
 * survive a round trip); the fuzz targets abort on 1. Memory errors are the sanitizers' job. */
#ifndef SM_FUZZ_ENTRIES_H
#define SM_FUZZ_ENTRIES_H

#include <stddef.h>
#include <stdint.h>

/* sm__png_decode from memory, expecting the size the IHDR claims when small, else 28x28. */
int sm_fuzz_png(const uint8_t *data, size_t size);
/* The dataset loader (listing, limits, PNG decoding) on a zip held in memory, 8x8 images,
 * small limits. */
int sm_fuzz_zip_dataset(const uint8_t *data, size_t size);
/* The safetensors parser from memory, then sm_model_load on the same bytes written to a
 * temporary file (with the checksum patched to match, so that the checks behind it are
 * reached). */
int sm_fuzz_checkpoint(const uint8_t *data, size_t size);
/* sm_arch_from_string; when it parses, sm_arch_to_string's text must parse to the same text. */
int sm_fuzz_arch_text(const uint8_t *data, size_t size);
/* The one-shot run reader (listing, class_labels.txt parser, lookups, limits, PNG decoding) on
 * a zip held in memory, 8x8 images, small limits; whatever opens is read back whole. An input
 * starting with 'L' is instead a class_labels.txt for a fixed 3-way run (the parser alone). */
int sm_fuzz_oneshot_runs(const uint8_t *data, size_t size);
/* sm_gallery_load's reader on a gallery file held in memory, for a fixed tiny model
 * ("1x4x4:flatten,fc3"), with the metadata model_id and crc32 patched to match (so that the
 * checks behind them are reached); whatever loads is checked for consistency and searched. */
int sm_fuzz_gallery(const uint8_t *data, size_t size);

#endif
