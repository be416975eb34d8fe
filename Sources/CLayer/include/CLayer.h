#ifndef HVC_CLAYER_H
#define HVC_CLAYER_H

#include <stddef.h>
#include <stdint.h>

/// Applies one image layer (a tar, compressed or not: libarchive detects it) onto `root`, with
/// OCI whiteouts: `.wh.NAME` deletes NAME from the layers below, `.wh..wh..opq` empties its
/// directory of what the layers below put there.
///
/// Runs in a child process chrooted into `root`, so that no entry, symlink or hard link can
/// reach outside it whatever the archive says; entries with `..` or absolute paths are refused
/// outright, and so is writing through a symlink. Fails once `already` plus the file content
/// written here passes `max_bytes`; `*written` is what this layer wrote.
/// Returns 0, or -1 with a message in `error`.
int hvc_apply_layer(const char *layer_path, const char *root, uint64_t already, uint64_t max_bytes,
                    uint64_t *written, char *error, size_t error_size);

/// Extracts every regular file and directory of the tar at `archive_path` into `directory`
/// (an image archive's outer tar: blobs and JSON), with the same confinement and a size bound.
int hvc_extract_archive(const char *archive_path, const char *directory, uint64_t max_bytes,
                        char *error, size_t error_size);

/// Extracts a copy out of a container (`hvc cp`) into `directory`: regular files, directories
/// and symbolic links, with their permissions (never set-user-ID or set-group-ID bits) and
/// times, not their owners; confined as above.
int hvc_extract_copy(const char *archive_path, const char *directory, uint64_t max_bytes,
                     char *error, size_t error_size);

#endif
