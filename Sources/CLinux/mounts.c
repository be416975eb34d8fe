// Mounts placed into another process's mount namespace: detached trees (open_tree) made in
// the caller's view, moved onto their targets by a child that entered the other namespace.
// The host shares folders into a jailed VMM this way; the guest agent places a container's
// volumes and tmpfs mounts into its prepared container the same way.
#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

struct hvc_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};
enum { ATTR_RDONLY = 0x1, ATTR_NOSUID = 0x2, ATTR_NODEV = 0x4 };

int hvc_mount_tree_open(const char *beneath, const char *path, unsigned flags) {
    int source = -1;
    if (beneath != NULL) {
        int root = open(beneath, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0) return -1;
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = O_PATH | O_CLOEXEC;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        source = (int)syscall(SYS_openat2, root, path, &how, sizeof how);
        int saved = errno;
        close(root);
        errno = saved;
        if (source < 0) return -1;
    }
    int tree = source >= 0
        ? (int)syscall(SYS_open_tree, source, "", OPEN_TREE_CLONE | O_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH)
        : (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | O_CLOEXEC | AT_RECURSIVE);
    int saved = errno;
    if (source >= 0) close(source);
    if (tree < 0) { errno = saved; return -1; }
    struct hvc_mount_attr attr = { 0 };
    if (flags & HVC_MOUNT_READONLY) attr.attr_set |= ATTR_RDONLY;
    if (flags & HVC_MOUNT_NOSUID) attr.attr_set |= ATTR_NOSUID;
    if (flags & HVC_MOUNT_NODEV) attr.attr_set |= ATTR_NODEV;
    if (attr.attr_set != 0 &&
        syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
        saved = errno;
        close(tree);
        errno = saved;
        return -1;
    }
    return tree;
}

/// mkdir -p of `path`'s parents, then the last component as a directory or an empty file.
static int make_target(const char *path, int as_file) {
    char buffer[PATH_MAX];
    size_t length = strlen(path);
    if (length == 0 || length >= sizeof buffer) { errno = ENAMETOOLONG; return -1; }
    memcpy(buffer, path, length + 1);
    for (char *slash = strchr(buffer + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        *slash = 0;
        if (mkdir(buffer, 0755) < 0 && errno != EEXIST) return -1;
        *slash = '/';
    }
    if (as_file) {
        int fd = open(buffer, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EISDIR && errno != ELOOP) return -1;
        if (fd >= 0) close(fd);
        return 0;
    }
    if (mkdir(buffer, 0755) < 0 && errno != EEXIST) return -1;
    return 0;
}

static _Noreturn void place(pid_t pid, const struct hvc_placed_mount *mounts, size_t count, int readonly_root,
                            int fd) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)pid);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNS) < 0 || chdir("/") < 0) hvc_child_fail(fd, HVC_STAGE_NAMESPACES);
    for (size_t i = 0; i < count; i++) {
        const struct hvc_placed_mount *m = &mounts[i];
        int as_file = 0;
        if (m->tree >= 0) {
            struct stat info;
            if (fstat(m->tree, &info) < 0) hvc_child_fail(fd, HVC_STAGE_MOUNTS);
            as_file = !S_ISDIR(info.st_mode);
        }
        if (m->create && make_target(m->target, as_file) < 0) hvc_child_fail(fd, HVC_STAGE_MOUNTS);
        int rc = m->tree >= 0
            ? (int)syscall(SYS_move_mount, m->tree, "", AT_FDCWD, m->target, MOVE_MOUNT_F_EMPTY_PATH)
            : mount("tmpfs", m->target, "tmpfs", MS_NOSUID | MS_NODEV, m->tmpfs_options);
        if (rc < 0) hvc_child_fail(fd, HVC_STAGE_MOUNTS);
    }
    if (readonly_root && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
        hvc_child_fail(fd, HVC_STAGE_MOUNTS);
    _exit(0);
}

int hvc_mounts_place(pid_t pid, const struct hvc_placed_mount *mounts, size_t count, int readonly_root,
                     struct hvc_spawn_result *result) {
    memset(result, 0, sizeof *result);
    int fd;
    pid_t child = hvc_clone_reporting(0, &fd);
    if (child < 0) return -1;
    if (child == 0) place(pid, mounts, count, readonly_root, fd);
    hvc_collect_reports(fd, result);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    if (result->stage == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        result->stage = HVC_STAGE_MOUNTS;
        result->error = EPROTO;
    }
    return 0;
}
