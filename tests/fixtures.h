/* SPDX-License-Identifier: MIT */
/* Test data generated at test time: PNG files of every greyscale depth (and the kinds the
 * library must refuse), Omniglot-like folder trees, and zips of them. Functions return 0 on
 * success and -1 on failure; strings they return are malloc'd (free them with free). */
#ifndef SM_TESTS_FIXTURES_H
#define SM_TESTS_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

/* A new empty folder under $TMPDIR (or /tmp); NULL on failure. */
char *fx_tempdir(void);
/* Removes a file or a folder and everything below it. */
int fx_rmtree(const char *path);
/* "a/b". */
char *fx_join(const char *a, const char *b);
/* Creates a folder and any missing parents. */
int fx_mkdirs(const char *path);
/* Writes `n` bytes to a new file (parents created). */
int fx_write_bytes(const char *path, const void *data, size_t n);
/* Reads a whole file; *n receives its size. NULL on failure. */
uint8_t *fx_read_bytes(const char *path, size_t *n);

/* A deterministic pseudo-random 8-bit image (w*h values), different for each `seed`. */
void fx_pattern(uint8_t *grey, int w, int h, unsigned seed);

enum { FX_GREY = 0, FX_RGB = 2, FX_GREY_ALPHA = 4 };

/* Encodes `grey` (w*h 8-bit levels) as a PNG with libspng. `color_type` FX_GREY with
 * bit_depth 1, 2, 4, 8 or 16 (levels are quantised: the top bits below 8, grey*257 at 16);
 * FX_RGB and FX_GREY_ALPHA at depth 8. Returns a malloc'd buffer (size in *n) or NULL. */
uint8_t *fx_encode_png(int w, int h, int color_type, int bit_depth, const uint8_t *grey, size_t *n);
/* The same, written to `path` (parents created). */
int fx_write_png(const char *path, int w, int h, int color_type, int bit_depth,
                 const uint8_t *grey);
/* A PNG cut in half: a corrupt file. */
int fx_write_truncated_png(const char *path, int w, int h);
/* PNGs whose pixels decode but which are damaged: the IDAT chunk's CRC wrong, a tEXt chunk
 * after IDAT with a wrong CRC, or the file cut just before its IEND chunk. */
enum { FX_DAMAGE_IDAT_CRC = 1, FX_DAMAGE_TEXT_CRC, FX_DAMAGE_NO_IEND };
int fx_write_damaged_png(const char *path, int w, int h, int damage);
/* The 8-bit value the library must decode for level `grey` stored at `bit_depth`. */
uint8_t fx_expected_level(uint8_t grey, int bit_depth);

/* Zips every file below `dir` into `zip_path` as "<prefix><relative path>" (prefix "" for none,
 * else ending in '/'), adding an entry for each folder first when `dir_entries` is set.
 * `store` keeps the data uncompressed (so tests can damage it in place). */
int fx_zip_tree(const char *dir, const char *zip_path, const char *prefix, int dir_entries,
                int store);
/* Adds (or replaces) one entry holding `n` bytes to an existing or new zip. */
int fx_zip_add(const char *zip_path, const char *name, const void *data, size_t n);

#endif
