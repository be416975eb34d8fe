// Image layers and archives through libarchive, in a chrooted child.
#define _GNU_SOURCE
#include "CLayer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MODE_LAYER = 1, MODE_ARCHIVE = 2, MODE_COPY = 3 };

/// Writes `text` to the file at `path` (a /proc/self knob); 0 or -1.
static int write_knob(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/// A caller without CAP_SYS_CHROOT (a user's `hvc cp`) chroots in a user namespace of its own,
/// where it is root mapped onto itself: what it writes is still owned by its own uid.
static int enter_own_user_namespace(void) {
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER) < 0) return -1;
    char map[64];
    if (write_knob("/proc/self/setgroups", "deny") < 0) return -1;
    snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
    if (write_knob("/proc/self/uid_map", map) < 0) return -1;
    snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
    return write_knob("/proc/self/gid_map", map);
}

static _Noreturn void child_fail(int fd, const char *format, ...) {
    char message[512];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(message, sizeof message, format, args);
    va_end(args);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof message) n = sizeof message - 1;
    (void)!write(fd, message, (size_t)n);
    _exit(1);
}

/// The entry's path made relative ("./a/b" → "a/b"); NULL for the root itself.
/// Refuses absolute paths and any ".." component.
static const char *clean_path(const char *path, int fd) {
    if (path[0] == '/') child_fail(fd, "entry \"%s\" has an absolute path", path);
    while (path[0] == '.' && path[1] == '/') path += 2;
    if (path[0] == '\0' || strcmp(path, ".") == 0) return NULL;
    const char *p = path;
    while (*p) {
        const char *end = strchrnul(p, '/');
        if (end - p == 2 && p[0] == '.' && p[1] == '.') child_fail(fd, "entry \"%s\" climbs out with \"..\"", path);
        p = *end ? end + 1 : end;
    }
    return path;
}

static int remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *dir = opendir(path);
    if (dir == NULL) return -1;
    struct dirent *entry;
    char child[4096];
    int rc = 0;
    while (rc == 0 && (entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        if ((size_t)snprintf(child, sizeof child, "%s/%s", path, entry->d_name) >= sizeof child) { rc = -1; break; }
        rc = remove_tree(child);
    }
    closedir(dir);
    return rc == 0 ? rmdir(path) : rc;
}

/// Whether every directory leading to `path` is a real directory (not a symlink), so that a
/// whiteout cannot delete through a link. Inside the chroot a link could not leave the root
/// anyway; this keeps deletions to the paths the layer names.
static int parents_are_directories(const char *path) {
    char prefix[4096];
    size_t length = strlen(path);
    if (length >= sizeof prefix) return 0;
    for (size_t i = 0; i < length; i++) {
        if (path[i] != '/') continue;
        memcpy(prefix, path, i);
        prefix[i] = '\0';
        struct stat st;
        if (lstat(prefix, &st) < 0 || !S_ISDIR(st.st_mode)) return 0;
    }
    return 1;
}

static struct archive *open_reader(int archive_fd, int fd) {
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (lseek(archive_fd, 0, SEEK_SET) < 0 || archive_read_open_fd(a, archive_fd, 65536) != ARCHIVE_OK)
        child_fail(fd, "cannot read archive: %s", archive_error_string(a));
    return a;
}

/// Pass 1 of a layer: apply its whiteouts to the layers below.
static void apply_whiteouts(int archive_fd, int fd) {
    struct archive *a = open_reader(archive_fd, fd);
    struct archive_entry *entry;
    int r;
    while ((r = archive_read_next_header(a, &entry)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const char *path = clean_path(archive_entry_pathname(entry), fd);
        if (path == NULL) continue;
        const char *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        if (strncmp(base, ".wh.", 4) != 0) continue;
        char dir[4096];
        size_t dir_length = slash ? (size_t)(slash - path) : 0;
        if (dir_length >= sizeof dir) child_fail(fd, "entry path too long");
        memcpy(dir, path, dir_length);
        dir[dir_length] = '\0';
        char target[4096];
        if (strcmp(base, ".wh..wh..opq") == 0) {
            // Opaque: empty the directory of what lower layers put there.
            const char *d = dir_length ? dir : ".";
            if (dir_length && !parents_are_directories(path)) continue;
            DIR *handle = opendir(d);
            if (handle == NULL) continue;
            struct dirent *child;
            while ((child = readdir(handle)) != NULL) {
                if (strcmp(child->d_name, ".") == 0 || strcmp(child->d_name, "..") == 0) continue;
                snprintf(target, sizeof target, "%s/%s", d, child->d_name);
                if (remove_tree(target) < 0) child_fail(fd, "opaque whiteout %s: %s", path, strerror(errno));
            }
            closedir(handle);
        } else {
            if ((size_t)snprintf(target, sizeof target, "%s%s%s", dir, dir_length ? "/" : "", base + 4) >= sizeof target)
                child_fail(fd, "entry path too long");
            if (!parents_are_directories(target)) continue;
            if (remove_tree(target) < 0) child_fail(fd, "whiteout %s: %s", path, strerror(errno));
        }
    }
    if (r != ARCHIVE_EOF) child_fail(fd, "layer is damaged or truncated: %s", archive_error_string(a));
    archive_read_free(a);
}

/// Pass 2 (or the only pass for an archive): write the entries.
static void extract(int archive_fd, int mode, uint64_t already, uint64_t max_bytes, int fd, int count_fd) {
    struct archive *a = open_reader(archive_fd, fd);
    struct archive *disk = archive_write_disk_new();
    // No ARCHIVE_EXTRACT_UNLINK: with it libarchive would replace a symlink in the way by a
    // directory; without it, writing through a symlink is refused outright.
    int flags = ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;
    if (mode == MODE_LAYER) flags |= ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR;
    if (mode == MODE_COPY) flags |= ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME;
    archive_write_disk_set_options(disk, flags);
    uint64_t total = 0;
    struct archive_entry *entry;
    int r;
    while ((r = archive_read_next_header(a, &entry)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const char *path = clean_path(archive_entry_pathname(entry), fd);
        if (path == NULL) continue;
        const char *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        if (mode == MODE_LAYER && strncmp(base, ".wh.", 4) == 0) continue;
        mode_t type = archive_entry_filetype(entry);
        if (mode == MODE_ARCHIVE && type != AE_IFREG && type != AE_IFDIR) continue;
        // A copy out of a container: files, directories and links, never set-ID bits or devices.
        if (mode == MODE_COPY) {
            if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) continue;
            archive_entry_set_perm(entry, archive_entry_perm(entry) & 01777);
        }
        char rewritten[4096];
        snprintf(rewritten, sizeof rewritten, "%s", path);
        archive_entry_set_pathname(entry, rewritten);
        const char *link = archive_entry_hardlink(entry);
        if (link != NULL) {
            const char *clean = clean_path(link, fd);
            if (clean == NULL) child_fail(fd, "hard link \"%s\" to the root", path);
            char target[4096];
            snprintf(target, sizeof target, "%s", clean);
            archive_entry_set_hardlink(entry, target);
        }
        if (archive_write_header(disk, entry) != ARCHIVE_OK)
            child_fail(fd, "entry \"%s\": %s", path, archive_error_string(disk));
        const void *buffer;
        size_t size;
        la_int64_t offset;
        while ((r = archive_read_data_block(a, &buffer, &size, &offset)) == ARCHIVE_OK) {
            total += size;
            if (already + total > max_bytes)
                child_fail(fd, "content exceeds the limit of %llu bytes (decompression bomb?)", (unsigned long long)max_bytes);
            if (archive_write_data_block(disk, buffer, size, offset) != ARCHIVE_OK)
                child_fail(fd, "write \"%s\": %s", path, archive_error_string(disk));
        }
        if (r != ARCHIVE_EOF) child_fail(fd, "entry \"%s\" is damaged or truncated: %s", path, archive_error_string(a));
        if (archive_write_finish_entry(disk) != ARCHIVE_OK)
            child_fail(fd, "entry \"%s\": %s", path, archive_error_string(disk));
    }
    if (r != ARCHIVE_EOF) child_fail(fd, "archive is damaged or truncated: %s", archive_error_string(a));
    archive_write_free(disk);
    archive_read_free(a);
    (void)!write(count_fd, &total, sizeof total);
}

static int run_confined(const char *archive_path, const char *root, int mode, uint64_t already,
                        uint64_t max_bytes, uint64_t *written, char *error, size_t error_size) {
    error[0] = '\0';
    int archive_fd = open(archive_path, O_RDONLY | O_CLOEXEC);
    if (archive_fd < 0) {
        snprintf(error, error_size, "open %s: %s", archive_path, strerror(errno));
        return -1;
    }
    int errors[2], counts[2];
    if (pipe2(errors, O_CLOEXEC) < 0 || pipe2(counts, O_CLOEXEC) < 0) {
        snprintf(error, error_size, "pipe: %s", strerror(errno));
        close(archive_fd);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(error, error_size, "fork: %s", strerror(errno));
        close(archive_fd);
        return -1;
    }
    if (pid == 0) {
        close(errors[0]);
        close(counts[0]);
        // Confine every path the archive names to `root`.
        int rooted = chroot(root);
        if (rooted < 0 && errno == EPERM && mode == MODE_COPY && enter_own_user_namespace() == 0) rooted = chroot(root);
        if (rooted < 0 || chdir("/") < 0) child_fail(errors[1], "chroot %s: %s", root, strerror(errno));
        umask(0);
        if (mode == MODE_LAYER) apply_whiteouts(archive_fd, errors[1]);
        extract(archive_fd, mode, already, max_bytes, errors[1], counts[1]);
        _exit(0);
    }
    close(archive_fd);
    close(errors[1]);
    close(counts[1]);
    size_t used = 0;
    ssize_t n;
    while (used + 1 < error_size && (n = read(errors[0], error + used, error_size - used - 1)) != 0) {
        if (n < 0) { if (errno == EINTR) continue; break; }
        used += (size_t)n;
    }
    error[used] = '\0';
    uint64_t total = 0;
    while ((n = read(counts[0], &total, sizeof total)) < 0 && errno == EINTR) {}
    close(errors[0]);
    close(counts[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (written) *written = total;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && used == 0) return 0;
    if (used == 0) snprintf(error, error_size, "extraction failed (status %d)", status);
    return -1;
}

int hvc_apply_layer(const char *layer_path, const char *root, uint64_t already, uint64_t max_bytes,
                    uint64_t *written, char *error, size_t error_size) {
    return run_confined(layer_path, root, MODE_LAYER, already, max_bytes, written, error, error_size);
}

int hvc_extract_archive(const char *archive_path, const char *directory, uint64_t max_bytes,
                        char *error, size_t error_size) {
    return run_confined(archive_path, directory, MODE_ARCHIVE, 0, max_bytes, NULL, error, error_size);
}

int hvc_extract_copy(const char *archive_path, const char *directory, uint64_t max_bytes,
                     char *error, size_t error_size) {
    return run_confined(archive_path, directory, MODE_COPY, 0, max_bytes, NULL, error, error_size);
}
