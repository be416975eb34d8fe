// The jail: one linear sequence between fork and exec of each VMM process.
//
// The fork is a raw clone of a multithreaded process (glibc's atfork handlers do not run), so
// the child must not take a lock another thread may have held at the clone: no allocation
// (malloc's arena locks) and no glibc call that synchronises threads (setuid and its kin
// signal every thread glibc knows of and wait for them). The seccomp program and the
// capability state are therefore built by the caller, and ids are changed with raw syscalls.
#define _GNU_SOURCE
#include "CJail.h"
#include "CLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <unistd.h>

#define fail hvc_child_fail

static int join_path(char *out, size_t size, const char *a, const char *b) {
    int n = snprintf(out, size, "%s%s", a, b);
    if (n < 0 || (size_t)n >= size) { errno = ENAMETOOLONG; return -1; }
    return 0;
}

static int join_cgroups(const struct hvc_jail *jail) {
    for (size_t i = 0; i < jail->cgroup_count; i++) {
        int fd = open(jail->cgroup_procs[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0) return -1;
        ssize_t n = write(fd, "0", 1);
        int saved = errno;
        close(fd);
        if (n != 1) { errno = saved; return -1; }
    }
    return 0;
}

/// Bind mounts into the jail root; read-only ones remounted so (a bind ignores MS_RDONLY).
static int populate(const struct hvc_jail *jail) {
    char target[PATH_MAX];
    for (size_t i = 0; i < jail->mount_count; i++) {
        const struct hvc_jail_mount *m = &jail->mounts[i];
        if (join_path(target, sizeof target, jail->root, m->target) < 0) return -1;
        if (mount(m->source, target, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
        unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | (m->device ? 0 : MS_NODEV);
        if (!m->writable) flags |= MS_RDONLY;
        if (mount(NULL, target, NULL, flags, NULL) < 0) return -1;
    }
    return 0;
}

/// The filter as the BPF program libseccomp makes of the rules (exported through a memfd, as
/// libseccomp 2.5 offers no other way); `prog->filter` is the caller's to free.
static int build_filter(const struct hvc_seccomp_rule *rules, size_t count, int default_error, struct sock_fprog *prog) {
    scmp_filter_ctx ctx = seccomp_init(default_error ? SCMP_ACT_ERRNO((uint32_t)default_error) : SCMP_ACT_ALLOW);
    if (ctx == NULL) { errno = ENOMEM; return -1; }
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        const struct hvc_seccomp_rule *r = &rules[i];
        // libseccomp refuses a rule that repeats the default action.
        if (r->action == HVC_SECCOMP_ALLOW && default_error == 0) continue;
        if (r->action == HVC_SECCOMP_ERRNO && r->error == default_error) continue;
        int nr = seccomp_syscall_resolve_name(r->syscall);
        if (nr == __NR_SCMP_ERROR) { rc = -EINVAL; break; }
        uint32_t action = r->action == HVC_SECCOMP_KILL ? SCMP_ACT_KILL_PROCESS
                        : r->action == HVC_SECCOMP_ALLOW ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO((uint32_t)r->error);
        if (r->arg_mask != 0) {
            rc = seccomp_rule_add(ctx, action, nr, 1, SCMP_CMP(r->arg_index, SCMP_CMP_MASKED_EQ, r->arg_mask, r->arg_value));
        } else {
            rc = seccomp_rule_add(ctx, action, nr, 0);
        }
    }
    int memfd = rc == 0 ? memfd_create("hvc-seccomp", MFD_CLOEXEC) : -1;
    if (rc == 0 && memfd < 0) rc = -errno;
    if (rc == 0) rc = seccomp_export_bpf(ctx, memfd);
    seccomp_release(ctx);
    if (rc == 0) {
        off_t size = lseek(memfd, 0, SEEK_END);
        size_t length = size > 0 ? (size_t)size : 0;
        struct sock_filter *filter = length > 0 && length % sizeof *filter == 0 && length / sizeof *filter <= BPF_MAXINSNS
                                         ? malloc(length) : NULL;
        if (filter == NULL || pread(memfd, filter, length, 0) != (ssize_t)length) {
            free(filter);
            rc = -EINVAL;
        } else {
            prog->len = (unsigned short)(length / sizeof *filter);
            prog->filter = filter;
        }
    }
    if (memfd >= 0) close(memfd);
    if (rc < 0) { errno = -rc; return -1; }
    return 0;
}

/// Loads a built filter (no_new_privs must be set).
static int load_filter(const struct sock_fprog *prog) {
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog);
}

static int install_filter(const struct hvc_seccomp_rule *rules, size_t count, int default_error) {
    struct sock_fprog prog;
    if (build_filter(rules, count, default_error, &prog) < 0) return -1;
    int rc = load_filter(&prog);
    int saved = errno;
    free(prog.filter);
    errno = saved;
    return rc;
}

int hvc_seccomp_install(const struct hvc_seccomp_rule *rules, size_t count, int default_error) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
    return install_filter(rules, count, default_error);
}

int hvc_seccomp_syscall_known(const char *name) {
    return seccomp_syscall_resolve_name(name) != __NR_SCMP_ERROR;
}

static int kept(uint64_t mask, cap_value_t cap) {
    return cap < 64 && (mask >> cap) & 1;
}

/// Empties the bounding set but for the capabilities in `mask` (while CAP_SETPCAP is held).
static int drop_bounding_except(uint64_t mask) {
    for (cap_value_t cap = 0; cap <= CAP_LAST_CAP; cap++) {
        if (!kept(mask, cap) && cap_drop_bound(cap) < 0 && errno != EINVAL) return -1;
    }
    return 0;
}

/// The capability state that leaves exactly those in `mask` permitted and effective, or none at
/// all; with `ambient`, inheritable too (for `raise_ambient`). Built before the clone.
static cap_t capabilities_for(uint64_t mask, int ambient) {
    cap_t caps = cap_init();
    if (caps == NULL) return NULL;
    cap_value_t list[64];
    int n = 0;
    for (cap_value_t cap = 0; cap <= CAP_LAST_CAP && cap < 64; cap++) {
        if (kept(mask, cap)) list[n++] = cap;
    }
    if (n > 0 && (cap_set_flag(caps, CAP_PERMITTED, n, list, CAP_SET) < 0 ||
                  cap_set_flag(caps, CAP_EFFECTIVE, n, list, CAP_SET) < 0 ||
                  (ambient && cap_set_flag(caps, CAP_INHERITABLE, n, list, CAP_SET) < 0))) {
        cap_free(caps);
        return NULL;
    }
    return caps;
}

/// Raises the capabilities in `mask` into the ambient set, so that they survive execve of a
/// binary without file capabilities.
static int raise_ambient(uint64_t mask) {
    for (cap_value_t cap = 0; cap <= CAP_LAST_CAP && cap < 64; cap++) {
        if (kept(mask, cap) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) return -1;
    }
    return 0;
}

/// What the caller builds for the child: everything that allocates.
struct prepared_jail {
    struct sock_fprog filter;
    cap_t capabilities;
};

static _Noreturn void jail_child(const struct hvc_jail *jail, const struct prepared_jail *prepared, const char *path,
                                 const char *const *argv, const char *const *envp, int output_fd, int fd) {
    // 0. The VM's own network namespace, made and wired by the host side, when it has one.
    if (jail->netns_fd >= 0 && setns(jail->netns_fd, CLONE_NEWNET) < 0) fail(fd, HVC_JAIL_NAMESPACES);

    // 1. Die with the supervisor. (getppid() is 0 in a new pid namespace, so no check here:
    //    the supervisor kills the process group of a VMM it no longer wants.)
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail(fd, HVC_JAIL_NAMESPACES);
    if (setsid() < 0) fail(fd, HVC_JAIL_STDIO);

    // 2. stdio: nothing in, output to the VM's log.
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(output_fd, 1) < 0 || dup2(output_fd, 2) < 0)
        fail(fd, HVC_JAIL_STDIO);
    // The fds the VMM inherits (a template's memory, a TAP device) become its fds 3 and 4, kept
    // across exec. Everything moves above them first, the report pipe included, so that no
    // dup2 overwrites a descriptor still to be moved.
    int moved[2] = { -1, -1 };
    if (jail->inherit_fds[0] >= 0 || jail->inherit_fds[1] >= 0) {
        if (fd <= 4 && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 10)) < 0) _exit(127);
        for (int i = 0; i < 2; i++) {
            if (jail->inherit_fds[i] >= 0 && (moved[i] = fcntl(jail->inherit_fds[i], F_DUPFD_CLOEXEC, 10)) < 0)
                fail(fd, HVC_JAIL_STDIO);
        }
        for (int i = 0; i < 2; i++) {
            if (moved[i] >= 0 && dup2(moved[i], 3 + i) < 0) fail(fd, HVC_JAIL_STDIO);
        }
    }

    // 3. Resource limits: join the VM's cgroups while still root.
    if (join_cgroups(jail) < 0) fail(fd, HVC_JAIL_CGROUP);

    // 4. Filesystem: private mounts, the jail root as a mount point with only what the VMM
    //    needs bound in, /proc of the new pid namespace (its processes only: no sysctls, no
    //    sysrq-trigger, which a kept CAP_DAC_OVERRIDE would otherwise open), then pivot_root
    //    and detach the host.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail(fd, HVC_JAIL_MOUNTS);
    if (mount(jail->root, jail->root, NULL, MS_BIND, NULL) < 0) fail(fd, HVC_JAIL_MOUNTS);
    if (populate(jail) < 0) fail(fd, HVC_JAIL_MOUNTS);
    char proc[PATH_MAX];
    if (join_path(proc, sizeof proc, jail->root, "/proc") < 0 ||
        mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid") < 0)
        fail(fd, HVC_JAIL_MOUNTS);
    if (chdir(jail->root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
        chdir("/") < 0)
        fail(fd, HVC_JAIL_PIVOT_ROOT);
    sethostname("hvc-jail", 8);

    // 5. rlimits: bounded fds and file size (the console log), no core dumps.
    struct rlimit nofile = { jail->max_open_files, jail->max_open_files };
    struct rlimit fsize = { jail->max_file_size, jail->max_file_size };
    struct rlimit core = { 0, 0 };
    if (setrlimit(RLIMIT_NOFILE, &nofile) < 0 || setrlimit(RLIMIT_FSIZE, &fsize) < 0 ||
        setrlimit(RLIMIT_CORE, &core) < 0)
        fail(fd, HVC_JAIL_RLIMITS);

    // 6. Capabilities: no_new_privs, then empty the bounding set (but for the kept ones) while
    //    CAP_SETPCAP is held.
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(fd, HVC_JAIL_CAPABILITIES);
    if (drop_bounding_except(jail->kept_capabilities) < 0) fail(fd, HVC_JAIL_CAPABILITIES);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) fail(fd, HVC_JAIL_CAPABILITIES);
    if (jail->kept_capabilities && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail(fd, HVC_JAIL_CAPABILITIES);

    // 7. Identity: the VM's own unprivileged uid and gid; leaving uid 0 clears the permitted
    //    and effective sets, and the explicit clear below covers the inheritable one. Raw
    //    system calls, not glibc's wrappers (see the top of this file).
    gid_t groups[2] = { jail->gid, jail->extra_gid };
    gid_t gid = jail->gid;
    if (syscall(SYS_setgroups, jail->extra_gid ? 2 : 1, groups) < 0 || syscall(SYS_setresgid, gid, gid, gid) < 0 ||
        syscall(SYS_setresuid, jail->uid, jail->uid, jail->uid) < 0)
        fail(fd, HVC_JAIL_IDENTITY);
    // The kernel clears the parent-death signal when the uid changes: arm it again, or the VMM
    // would outlive a supervisor killed with SIGKILL.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail(fd, HVC_JAIL_IDENTITY);
    if (cap_set_proc(prepared->capabilities) < 0 || raise_ambient(jail->kept_capabilities) < 0)
        fail(fd, HVC_JAIL_CAPABILITIES);

    // 8. The seccomp filter last: nothing after it but execve.
    if (load_filter(&prepared->filter) < 0) fail(fd, HVC_JAIL_SECCOMP);

    execve(path, (char *const *)argv, (char *const *)envp);
    fail(fd, HVC_JAIL_EXEC);
}

int hvc_spawn_jailed(const struct hvc_jail *jail, const char *path, const char *const *argv,
                     const char *const *envp, int output_fd, struct hvc_spawn_result *result) {
    memset(result, 0, sizeof *result);
    struct prepared_jail prepared;
    if (build_filter(jail->rules, jail->rule_count, jail->seccomp_default_error, &prepared.filter) < 0) {
        result->stage = HVC_JAIL_SECCOMP;
        result->error = errno;
        return 0;
    }
    prepared.capabilities = capabilities_for(jail->kept_capabilities, 1);
    if (prepared.capabilities == NULL) {
        free(prepared.filter.filter);
        result->stage = HVC_JAIL_CAPABILITIES;
        result->error = errno;
        return 0;
    }
    int fd;
    unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
    if (jail->netns_fd < 0) flags |= CLONE_NEWNET;
    pid_t pid = hvc_clone_reporting(flags, &fd);
    if (pid == 0) {
        // Mark every inherited fd close-on-exec (the report pipe included, so success is EOF).
        syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
        hvc_reset_signals();
        jail_child(jail, &prepared, path, argv, envp, output_fd, fd);
    }
    int saved = errno;
    free(prepared.filter.filter);
    cap_free(prepared.capabilities);
    if (pid < 0) { errno = saved; return -1; }
    hvc_collect_reports(fd, result);
    result->pid = pid;
    return 0;
}

uint64_t hvc_filesystem_type(const char *path) {
    struct statfs fs;
    if (statfs(path, &fs) < 0) return 0;
    return (uint64_t)fs.f_type;
}

int hvc_keep_only_capability(int capability) {
    if (capability < 0 || capability >= 64) { errno = EINVAL; return -1; }
    uint64_t mask = 1ULL << capability;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || drop_bounding_except(mask) < 0) return -1;
    cap_t caps = capabilities_for(mask, 0);
    if (caps == NULL) return -1;
    int rc = cap_set_proc(caps);
    int saved = errno;
    cap_free(caps);
    errno = saved;
    return rc;
}
