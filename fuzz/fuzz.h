/* gst-uel: what the fuzz targets share
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <gst-uel/uel.h>

/* libFuzzer's entry points; replay-main.c calls them the same way */
int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

/* Writes all of @data to @fd from its current position, aborting on
 * failure. */
void uel_fuzz_write_all (int fd, const uint8_t * data, size_t size);
