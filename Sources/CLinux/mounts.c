// Mounts placed into another process's mount namespace: detached trees (open_tree) made in
// the caller's view, moved onto their targets by a child that entered the other namespace.
// The host shares folders into a jailed VMM this way; the guest agent places a container's
// volumes and tmpfs mounts into its prepared container the same way.
#define _GNU_SOURCE
#include "CLinux.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
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

/// Makes the tree `root` this namespace's root: the kernel's file systems the container was
/// prepared with (/proc, /sys, /dev and the mounts beneath them) move onto it, pivot_root swaps
/// it in for every process whose root was the old one, and the old root is detached.
static int reroot(int root) {
    static const char staged[] = "/.hvc-root";
    static const char *const kept[] = { "/proc", "/sys", "/dev" };
    if (make_target(staged, 0) < 0) return -1;
    if (syscall(SYS_move_mount, root, "", AT_FDCWD, staged, MOVE_MOUNT_F_EMPTY_PATH) < 0) return -1;
    char target[64];
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        snprintf(target, sizeof target, "%s%s", staged, kept[i]);
        if (make_target(target, 0) < 0 || mount(kept[i], target, NULL, MS_MOVE, NULL) < 0) return -1;
    }
    if (chdir(staged) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        return -1;
    return 0;
}

static _Noreturn void place(pid_t pid, int root, const struct hvc_placed_mount *mounts, size_t count, int readonly_root,
                            int fd) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)pid);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNS) < 0 || chdir("/") < 0) hvc_child_fail(fd, HVC_STAGE_NAMESPACES);
    if (root >= 0 && reroot(root) < 0) hvc_child_fail(fd, HVC_STAGE_PIVOT_ROOT);
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

int hvc_mounts_place(pid_t pid, int root, const struct hvc_placed_mount *mounts, size_t count, int readonly_root,
                     struct hvc_spawn_result *result) {
    memset(result, 0, sizeof *result);
    int fd;
    pid_t child = hvc_clone_reporting(0, &fd);
    if (child < 0) return -1;
    if (child == 0) place(pid, root, mounts, count, readonly_root, fd);
    hvc_collect_reports(fd, result);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    if (result->stage == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        result->stage = HVC_STAGE_MOUNTS;
        result->error = EPROTO;
    }
    return 0;
}

int hvc_mounts_detach(pid_t pid, const char *const *targets, size_t count) {
    pid_t child = fork();
    if (child < 0) return -1;
    if (child == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)pid);
        int ns = open(path, O_RDONLY | O_CLOEXEC);
        if (ns < 0 || setns(ns, CLONE_NEWNS) < 0) _exit(errno & 0xff);
        for (size_t i = 0; i < count; i++)
            if (umount2(targets[i], MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT) _exit(errno & 0xff);
        _exit(0);
    }
    int status;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        errno = WIFEXITED(status) ? WEXITSTATUS(status) : EPROTO;
        return -1;
    }
    return 0;
}

static void copy_attributes(int to, const char *name, const struct stat *info) {
    // Set-ID bits are not copied: the 9P server refuses them (see Specs/seccomp/vmm.json).
    fchownat(to, name, info->st_uid, info->st_gid, AT_SYMLINK_NOFOLLOW);
    if (!S_ISLNK(info->st_mode)) fchmodat(to, name, info->st_mode & 01777, 0);
    struct timespec times[2] = { info->st_atim, info->st_mtim };
    utimensat(to, name, times, AT_SYMLINK_NOFOLLOW);
}

static int copy_file(int from, int to, const char *name, const struct stat *info) {
    int in = openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0) return -1;
    int out = openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) { close(in); return -1; }
    char buffer[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { rc = (int)n; break; }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buffer + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) { rc = -1; break; }
            done += w;
        }
        if (rc < 0) break;
    }
    close(in);
    close(out);
    if (rc == 0) copy_attributes(to, name, info);
    return rc;
}

int hvc_copy_tree(int from, int to, int depth) {
    if (depth > 64) { errno = ELOOP; return -1; }
    int listing = dup(from);
    if (listing < 0) return -1;
    DIR *dir = fdopendir(listing);
    if (dir == NULL) { close(listing); return -1; }
    int rc = 0;
    struct dirent *entry;
    while (rc == 0 && (entry = readdir(dir)) != NULL) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        struct stat info;
        if (fstatat(from, name, &info, AT_SYMLINK_NOFOLLOW) < 0) { rc = -1; break; }
        if (S_ISDIR(info.st_mode)) {
            if (mkdirat(to, name, 0700) < 0 && errno != EEXIST) { rc = -1; break; }
            int sub_from = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int sub_to = openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub_from < 0 || sub_to < 0) rc = -1;
            else rc = hvc_copy_tree(sub_from, sub_to, depth + 1);
            if (sub_from >= 0) close(sub_from);
            if (sub_to >= 0) close(sub_to);
            if (rc == 0) copy_attributes(to, name, &info);
        } else if (S_ISREG(info.st_mode)) {
            rc = copy_file(from, to, name, &info);
        } else if (S_ISLNK(info.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlinkat(from, name, target, sizeof target - 1);
            if (n < 0) { rc = -1; break; }
            target[n] = 0;
            if (symlinkat(target, to, name) < 0) { rc = -1; break; }
            copy_attributes(to, name, &info);
        }
        // Devices, FIFOs and sockets are not copied: a shared folder holds none.
    }
    int saved = errno;
    closedir(dir);
    errno = saved;
    return rc;
}

int hvc_rename_exchange(const char *a, const char *b) {
    return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

int hvc_loop_attach(int fd, int read_only, char *path, size_t size) {
    int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (control < 0) return -1;
    // Another caller may take the free device between asking and configuring: ask again.
    for (int attempt = 0; attempt < 8; attempt++) {
        int number = ioctl(control, LOOP_CTL_GET_FREE);
        if (number < 0) break;
        snprintf(path, size, "/dev/loop%d", number);
        int device = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (device < 0) break;
        struct loop_config config;
        memset(&config, 0, sizeof config);
        config.fd = (unsigned)fd;
        // Direct I/O: a request reaches the backing file as one read or write of all its pages
        // (one 9P message of up to msize), where buffered loop I/O goes a page at a time and
        // keeps requests from merging. Where the file cannot take it, the kernel goes buffered.
        config.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO | (read_only ? LO_FLAGS_READ_ONLY : 0);
        if (ioctl(device, LOOP_CONFIGURE, &config) == 0) {
            close(control);
            return device;
        }
        int saved = errno;
        close(device);
        if (saved != EBUSY) {
            errno = saved;
            break;
        }
    }
    int saved = errno;
    close(control);
    errno = saved;
    return -1;
}
