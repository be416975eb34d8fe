// fork→exec paths in C, so that nothing but async-signal-safe calls run in the child.
#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <linux/random.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

struct report { int32_t stage; int32_t value; };

static void report(int fd, int stage, int value) {
    struct report r = { stage, value };
    ssize_t n;
    do { n = write(fd, &r, sizeof r); } while (n < 0 && errno == EINTR);
}

_Noreturn void hvc_child_fail(int report_fd, int stage) {
    report(report_fd, stage, errno);
    _exit(127);
}

/// fork() without glibc's atfork handlers, with extra clone flags.
static pid_t raw_clone(unsigned long flags) {
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
}

pid_t hvc_clone_reporting(unsigned long flags, int *report_fd) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) return -1;
    pid_t pid = raw_clone(flags);
    if (pid < 0) {
        int saved = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        errno = saved;
        return -1;
    }
    close(pid == 0 ? pipefd[0] : pipefd[1]);
    *report_fd = pid == 0 ? pipefd[1] : pipefd[0];
    return pid;
}

void hvc_collect_reports(int fd, struct hvc_spawn_result *result) {
    struct report r;
    for (;;) {
        ssize_t n = read(fd, &r, sizeof r);
        if (n < 0 && errno == EINTR) continue;
        if (n != (ssize_t)sizeof r) break;
        if (r.stage == HVC_STAGE_PID) {
            result->pid = r.value;
        } else if (result->stage == 0) {
            result->stage = r.stage;
            result->error = r.value;
        }
    }
    close(fd);
}

void hvc_reset_signals(void) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
    }
}

#define fail hvc_child_fail
#define reset_signals hvc_reset_signals

static int join_path(char *out, size_t size, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 > size) { errno = ENAMETOOLONG; return -1; }
    memcpy(out, a, la);
    memcpy(out + la, b, lb + 1);
    return 0;
}

static int mount_at(const char *root, const char *target, const char *type, unsigned long flags,
                    const char *data, mode_t mode) {
    char path[PATH_MAX];
    if (join_path(path, sizeof path, root, target) < 0) return -1;
    if (mkdir(path, mode) < 0 && errno != EEXIST) return -1;
    return mount(type, path, type, flags, data);
}

static int make_node(const char *root, const char *name, unsigned major_, unsigned minor_) {
    char path[PATH_MAX];
    if (join_path(path, sizeof path, root, name) < 0) return -1;
    if (mknod(path, S_IFCHR | 0666, makedev(major_, minor_)) < 0 && errno != EEXIST) return -1;
    return 0;
}

static int make_link(const char *root, const char *name, const char *target) {
    char path[PATH_MAX];
    if (join_path(path, sizeof path, root, name) < 0) return -1;
    if (symlink(target, path) < 0 && errno != EEXIST) return -1;
    return 0;
}

/// Writes `text` to the cgroup interface file `file` of `cgroup`, in one write as the kernel wants.
static int write_cgroup_file(const char *cgroup, const char *file, const char *text) {
    char path[PATH_MAX];
    if (join_path(path, sizeof path, cgroup, file) < 0) return -1;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t length = strlen(text);
    ssize_t n = write(fd, text, length);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)length ? 0 : -1;
}

static int join_cgroup(const char *cgroup) {
    return cgroup == NULL ? 0 : write_cgroup_file(cgroup, "/cgroup.procs", "0");
}

/// Makes the memory, pids and CPU controllers available below `cgroup` ('+'), or takes them
/// back ('-'). Given only while `cgroup` holds no process (cgroup v2's rule for a cgroup whose
/// children have controllers), and taken back before a process may join it again.
static int set_controllers(const char *cgroup, char sign) {
    return write_cgroup_file(cgroup, "/cgroup.subtree_control", sign == '+' ? "+memory +pids +cpu" : "-memory -pids -cpu");
}

/// The container's filesystem view: /proc of its pid namespace, read-only /sys, a private /dev,
/// its cgroup (the namespace's root) writable only when the container manages its tree.
static int populate_root(const char *root, int cgroup_writable) {
    const unsigned long hardened = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (mount_at(root, "/proc", "proc", hardened, NULL, 0555) < 0) return -1;
    if (mount_at(root, "/sys", "sysfs", hardened | MS_RDONLY, NULL, 0555) < 0) return -1;
    if (mount_at(root, "/sys/fs/cgroup", "cgroup2", hardened | (cgroup_writable ? 0 : MS_RDONLY), NULL, 0555) < 0) return -1;
    if (mount_at(root, "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k", 0755) < 0) return -1;
    if (make_node(root, "/dev/null", 1, 3) < 0 || make_node(root, "/dev/zero", 1, 5) < 0 ||
        make_node(root, "/dev/full", 1, 7) < 0 || make_node(root, "/dev/random", 1, 8) < 0 ||
        make_node(root, "/dev/urandom", 1, 9) < 0 || make_node(root, "/dev/tty", 5, 0) < 0)
        return -1;
    // The guest's own devpts, where the agent allocates the container's terminals: a pty's
    // name then resolves to the same device inside the container (tty, ttyname work).
    char pts[PATH_MAX];
    if (join_path(pts, sizeof pts, root, "/dev/pts") < 0) return -1;
    if (mkdir(pts, 0755) < 0 && errno != EEXIST) return -1;
    if (mount("/dev/pts", pts, NULL, MS_BIND, NULL) < 0) return -1;
    if (mount_at(root, "/dev/shm", "tmpfs", hardened, "mode=1777,size=65536k", 01777) < 0) return -1;
    if (make_link(root, "/dev/ptmx", "pts/ptmx") < 0 || make_link(root, "/dev/fd", "/proc/self/fd") < 0 ||
        make_link(root, "/dev/stdin", "/proc/self/fd/0") < 0 || make_link(root, "/dev/stdout", "/proc/self/fd/1") < 0 ||
        make_link(root, "/dev/stderr", "/proc/self/fd/2") < 0)
        return -1;
    return 0;
}

static void exec_in_path(const struct hvc_process *p) {
    const char *file = p->argv[0];
    if (strchr(file, '/') != NULL) {
        execve(file, (char *const *)p->argv, (char *const *)p->envp);
        return;
    }
    const char *path = (p->path && *p->path) ? p->path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    int seen_eacces = 0;
    char candidate[PATH_MAX];
    size_t flen = strlen(file);
    for (const char *dir = path;; ) {
        const char *end = strchrnul(dir, ':');
        size_t dlen = (size_t)(end - dir);
        if (dlen + 1 + flen + 1 <= sizeof candidate) {
            memcpy(candidate, dir, dlen);
            candidate[dlen] = '/';
            memcpy(candidate + dlen + 1, file, flen + 1);
            execve(candidate, (char *const *)p->argv, (char *const *)p->envp);
            if (errno == EACCES) seen_eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR) return;
        }
        if (*end == '\0') break;
        dir = end + 1;
    }
    errno = seen_eacces ? EACCES : ENOENT;
}

int hvc_privileges_add_rlimit(struct hvc_privileges *privileges, uint32_t resource, uint64_t soft, uint64_t hard) {
    if (privileges->rlimit_count >= HVC_MAX_RLIMITS) { errno = E2BIG; return -1; }
    if (resource >= RLIM_NLIMITS || soft > hard) { errno = EINVAL; return -1; }
    privileges->rlimits[privileges->rlimit_count].resource = resource;
    privileges->rlimits[privileges->rlimit_count].soft = soft;
    privileges->rlimits[privileges->rlimit_count].hard = hard;
    privileges->rlimit_count++;
    return 0;
}

/// Limits, and the capability bounding set, while still root: raising a hard limit and
/// dropping from the bounding set both need capabilities the process may be about to lose.
static int apply_privileges_as_root(const struct hvc_privileges *v) {
    if (v->rlimit_count > HVC_MAX_RLIMITS) { errno = EINVAL; return -1; }
    for (uint32_t i = 0; i < v->rlimit_count; i++) {
        struct rlimit limit = { .rlim_cur = v->rlimits[i].soft, .rlim_max = v->rlimits[i].hard };
        if (v->rlimits[i].resource >= RLIM_NLIMITS || setrlimit((int)v->rlimits[i].resource, &limit) < 0) return -1;
    }
    if (!v->restrict_capabilities) return 0;
    for (int cap = 0; cap < 64; cap++) {
        if (v->bounding & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return -1;  /* EINVAL: no such cap */
    }
    // Keep the permitted set through setuid to a non-root uid; capset trims it after.
    return prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
}

/// The capability sets, once the process has its uid; then no_new_privs.
static int apply_privileges_as_user(const struct hvc_privileges *v) {
    if (v->restrict_capabilities) {
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof data);
        for (int i = 0; i < 2; i++) {
            data[i].effective = (uint32_t)(v->effective >> (32 * i));
            data[i].permitted = (uint32_t)(v->permitted >> (32 * i));
            data[i].inheritable = (uint32_t)(v->inheritable >> (32 * i));
        }
        if (syscall(SYS_capset, &header, data) < 0) return -1;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) return -1;
        // The kernel keeps an ambient capability only while it is permitted and inheritable;
        // runc skips the others, and so do we (runc spec's default lists ambient, not inheritable).
        uint64_t ambient = v->ambient & v->permitted & v->inheritable;
        for (int cap = 0; cap < 64; cap++) {
            if (!(ambient & (1ULL << cap))) continue;
            if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) return -1;
        }
    }
    if (v->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
    return 0;
}

/// The last steps common to both spawn paths; never returns.
static _Noreturn void become_process(const struct hvc_process *p, int report_fd) {
    if (setsid() < 0) fail(report_fd, HVC_STAGE_STDIO);
    if (dup2(p->stdin_fd, 0) < 0 || dup2(p->stdout_fd, 1) < 0 || dup2(p->stderr_fd, 2) < 0)
        fail(report_fd, HVC_STAGE_STDIO);
    if (p->terminal && ioctl(0, TIOCSCTTY, 0) < 0) fail(report_fd, HVC_STAGE_STDIO);
    if (apply_privileges_as_root(&p->privileges) < 0) fail(report_fd, HVC_STAGE_PRIVILEGES);
    // Drop to the requested identity: groups first, then gid, then uid (after which no more).
    // Raw syscalls: glibc's wrappers would wait for threads of the agent this child does not have.
    if (syscall(SYS_setgroups, p->group_count, p->groups) < 0) fail(report_fd, HVC_STAGE_IDENTITY);
    if (syscall(SYS_setgid, p->gid) < 0 || syscall(SYS_setuid, p->uid) < 0) fail(report_fd, HVC_STAGE_IDENTITY);
    if (apply_privileges_as_user(&p->privileges) < 0) fail(report_fd, HVC_STAGE_PRIVILEGES);
    if (chdir(p->cwd) < 0) fail(report_fd, HVC_STAGE_CWD);
    umask(022);
    reset_signals();
    exec_in_path(p);
    fail(report_fd, HVC_STAGE_EXEC);
}

/// In the child of a CLONE_NEWPID|NEWNS|NEWUTS|NEWIPC clone: cgroup and cgroup namespace, the
/// container's mounts, then pivot_root onto its root. The hostname is the caller's to set.
static void enter_container(const struct hvc_container *c, int fd) {
    umask(0);
    // Join the container cgroup, then make it this namespace's root. A container that manages
    // its own tree then moves to its leaf, leaving the root free to give its children controllers.
    // (A container prepared before this one and discarded left them given.)
    if (c->delegated_leaf != NULL && set_controllers(c->cgroup, '-') < 0) fail(fd, HVC_STAGE_CGROUP);
    if (join_cgroup(c->cgroup) < 0 || unshare(CLONE_NEWCGROUP) < 0) fail(fd, HVC_STAGE_CGROUP);
    if (c->delegated_leaf != NULL && (join_cgroup(c->delegated_leaf) < 0 || set_controllers(c->cgroup, '+') < 0))
        fail(fd, HVC_STAGE_CGROUP);
    // Keep every mount below private to this namespace.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail(fd, HVC_STAGE_MOUNTS);
    if (populate_root(c->rootfs, c->delegated_leaf != NULL) < 0) fail(fd, HVC_STAGE_MOUNTS);
    // pivot_root onto the container root, stacking the old root on it, then detach the old.
    if (chdir(c->rootfs) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
        chdir("/") < 0)
        fail(fd, HVC_STAGE_PIVOT_ROOT);
}

static const unsigned long container_namespaces = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;

int hvc_spawn_container_init(const struct hvc_container *c, const struct hvc_process *p,
                             struct hvc_spawn_result *result) {
    memset(result, 0, sizeof *result);
    int fd;
    pid_t pid = hvc_clone_reporting(container_namespaces, &fd);
    if (pid < 0) return -1;
    if (pid == 0) {
        enter_container(c, fd);
        if (sethostname(c->hostname, strlen(c->hostname)) < 0) fail(fd, HVC_STAGE_HOSTNAME);
        become_process(p, fd);
    }
    hvc_collect_reports(fd, result);
    result->pid = pid;
    return 0;
}

// A prepared container: the stub's side of the control socket reads one message, a header and
// the strings it counts, with the three stdio descriptors attached.
struct stub_header {
    uint32_t length;        /* bytes after the header */
    uint32_t uid, gid, group_count, terminal, argc, envc;
    struct hvc_privileges privileges;
};
enum { STUB_MAX_MESSAGE = 1 << 20, STUB_MAX_GROUPS = 64, STUB_MAX_STRINGS = 8192 };

/// Reads exactly `length` bytes (after what the first recvmsg brought).
static int read_full(int fd, void *buffer, size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t n = read(fd, (char *)buffer + done, length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { errno = EPROTO; return -1; }
        done += (size_t)n;
    }
    return 0;
}

/// Splits `count` NUL-terminated strings off `*cursor`; NULL-terminated array in `out`.
static int take_strings(char **cursor, char *end, uint32_t count, const char **out) {
    for (uint32_t i = 0; i < count; i++) {
        char *nul = memchr(*cursor, 0, (size_t)(end - *cursor));
        if (nul == NULL) return -1;
        out[i] = *cursor;
        *cursor = nul + 1;
    }
    out[count] = NULL;
    return 0;
}

/// The stub: waits for its process, then becomes it. Never returns.
static _Noreturn void run_stub(int control, int fd) {
    struct stub_header h;
    int fds[3];
    char space[CMSG_SPACE(sizeof fds)];
    struct iovec iov = { &h, sizeof h };
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = space, .msg_controllen = sizeof space };
    ssize_t n;
    do { n = recvmsg(control, &message, MSG_CMSG_CLOEXEC | MSG_WAITALL); } while (n < 0 && errno == EINTR);
    if (n == 0) _exit(0);  /* the agent gave up on this stub */
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
    if (n != (ssize_t)sizeof h || cmsg == NULL || cmsg->cmsg_type != SCM_RIGHTS ||
        cmsg->cmsg_len != CMSG_LEN(sizeof fds) || h.length > STUB_MAX_MESSAGE ||
        h.group_count > STUB_MAX_GROUPS || h.argc == 0 || h.argc > STUB_MAX_STRINGS || h.envc > STUB_MAX_STRINGS ||
        h.privileges.rlimit_count > HVC_MAX_RLIMITS) {
        errno = EPROTO;
        fail(fd, HVC_STAGE_STDIO);
    }
    memcpy(fds, CMSG_DATA(cmsg), sizeof fds);
    // Memory straight from the kernel: malloc's locks may have been held by another of the
    // agent's threads when this process was cloned from it. (The stub execs or exits.)
    size_t pointers = sizeof(char *) * ((size_t)h.argc + 1 + (size_t)h.envc + 1);
    size_t size = pointers + sizeof(gid_t) * ((size_t)h.group_count + 1) + (size_t)h.length + 1;
    char *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) fail(fd, HVC_STAGE_STDIO);
    const char **argv = (const char **)memory;
    const char **envp = argv + h.argc + 1;
    gid_t *groups = (gid_t *)(memory + pointers);
    char *body = (char *)(groups + h.group_count + 1);
    if (read_full(control, body, h.length) < 0) fail(fd, HVC_STAGE_STDIO);
    body[h.length] = 0;
    char *cursor = body, *end = body + h.length;
    if ((size_t)(end - cursor) < sizeof(uint32_t) * h.group_count) { errno = EPROTO; fail(fd, HVC_STAGE_STDIO); }
    for (uint32_t i = 0; i < h.group_count; i++) {
        uint32_t g;
        memcpy(&g, cursor, sizeof g);
        groups[i] = g;
        cursor += sizeof g;
    }
    const char *fixed[4];  /* hostname, cwd, path */
    if (take_strings(&cursor, end, 3, fixed) < 0 || take_strings(&cursor, end, h.argc, argv) < 0 ||
        take_strings(&cursor, end, h.envc, envp) < 0) {
        errno = EPROTO;
        fail(fd, HVC_STAGE_STDIO);
    }
    close(control);
    // No hostname: the container shares its UTS namespace (a pod member), and its name.
    if (fixed[0][0] != 0 && sethostname(fixed[0], strlen(fixed[0])) < 0) fail(fd, HVC_STAGE_HOSTNAME);
    struct hvc_process p = {
        .argv = argv, .envp = envp, .path = fixed[2], .cwd = fixed[1], .uid = h.uid, .gid = h.gid,
        .groups = groups, .group_count = h.group_count, .stdin_fd = fds[0], .stdout_fd = fds[1],
        .stderr_fd = fds[2], .terminal = (int)h.terminal, .privileges = h.privileges,
    };
    become_process(&p, fd);
}

static int prepare(const struct hvc_container *c, unsigned long namespaces, struct hvc_prepared_container *prepared) {
    memset(prepared, 0, sizeof *prepared);
    int sockets[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) < 0) return -1;
    int fd;
    pid_t pid = hvc_clone_reporting(namespaces, &fd);
    if (pid < 0) {
        int saved = errno;
        close(sockets[0]);
        close(sockets[1]);
        errno = saved;
        return -1;
    }
    if (pid == 0) {
        close(sockets[0]);
        enter_container(c, fd);
        // Set up: say so, then wait for the process to become.
        char ok = 1;
        if (write(sockets[1], &ok, 1) != 1) _exit(127);
        run_stub(sockets[1], fd);
    }
    close(sockets[1]);
    prepared->pid = pid;
    prepared->control = sockets[0];
    prepared->reports = fd;
    char ok = 0;
    ssize_t n;
    do { n = read(sockets[0], &ok, 1); } while (n < 0 && errno == EINTR);
    if (n != 1) {
        // Set-up failed: the reports say where.
        struct hvc_spawn_result result = { 0 };
        hvc_collect_reports(fd, &result);
        close(sockets[0]);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        memset(prepared, 0, sizeof *prepared);
        prepared->stage = result.stage ? result.stage : HVC_STAGE_MOUNTS;
        prepared->error = result.error ? result.error : EPROTO;
    }
    return 0;
}

int hvc_prepare_container(const struct hvc_container *c, struct hvc_prepared_container *prepared) {
    return prepare(c, container_namespaces, prepared);
}

int hvc_prepare_member_container(pid_t pod_init, const struct hvc_container *c, struct hvc_prepared_container *prepared) {
    static const char *const shared[] = { "uts", "ipc" };
    int own[2] = { -1, -1 }, pods[2] = { -1, -1 }, rc = -1, saved = 0;
    char path[64];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/proc/self/ns/%s", shared[i]);
        own[i] = open(path, O_RDONLY | O_CLOEXEC);
        snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pod_init, shared[i]);
        pods[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (own[i] < 0 || pods[i] < 0) goto done;
    }
    // The clone inherits the namespaces it does not make new: enter the pod's for it, then
    // return to the caller's own (a single-threaded caller may).
    if (setns(pods[0], CLONE_NEWUTS) < 0) goto done;
    if (setns(pods[1], CLONE_NEWIPC) < 0) {
        saved = errno;
        setns(own[0], CLONE_NEWUTS);
        errno = saved;
        goto done;
    }
    rc = prepare(c, CLONE_NEWPID | CLONE_NEWNS, prepared);
    saved = errno;
    if (setns(own[0], CLONE_NEWUTS) < 0 || setns(own[1], CLONE_NEWIPC) < 0) abort();
    errno = saved;
done:
    saved = errno;
    for (int i = 0; i < 2; i++) {
        if (own[i] >= 0) close(own[i]);
        if (pods[i] >= 0) close(pods[i]);
    }
    errno = saved;
    return rc;
}

/// Appends `text` and its NUL to the buffer, if it fits.
static int append(char *buffer, size_t size, size_t *used, const void *bytes, size_t length) {
    if (*used + length > size) { errno = E2BIG; return -1; }
    memcpy(buffer + *used, bytes, length);
    *used += length;
    return 0;
}

int hvc_start_prepared_container(struct hvc_prepared_container *prepared, const char *hostname,
                                 const struct hvc_process *p, struct hvc_spawn_result *result) {
    memset(result, 0, sizeof *result);
    struct stub_header h = { 0 };
    h.uid = p->uid;
    h.gid = p->gid;
    h.terminal = (uint32_t)p->terminal;
    h.group_count = (uint32_t)p->group_count;
    h.privileges = p->privileges;
    while (p->argv[h.argc] != NULL) h.argc++;
    while (p->envp[h.envc] != NULL) h.envc++;
    int rc = -1;
    char *body = malloc(STUB_MAX_MESSAGE);
    size_t used = 0;
    if (body == NULL || h.group_count > STUB_MAX_GROUPS || h.argc == 0 || h.argc > STUB_MAX_STRINGS ||
        h.envc > STUB_MAX_STRINGS) {
        errno = body == NULL ? ENOMEM : E2BIG;
        goto done;
    }
    for (size_t i = 0; i < p->group_count; i++) {
        uint32_t g = p->groups[i];
        if (append(body, STUB_MAX_MESSAGE, &used, &g, sizeof g) < 0) goto done;
    }
    const char *path = p->path ? p->path : "";
    if (append(body, STUB_MAX_MESSAGE, &used, hostname, strlen(hostname) + 1) < 0 ||
        append(body, STUB_MAX_MESSAGE, &used, p->cwd, strlen(p->cwd) + 1) < 0 ||
        append(body, STUB_MAX_MESSAGE, &used, path, strlen(path) + 1) < 0)
        goto done;
    for (uint32_t i = 0; i < h.argc; i++)
        if (append(body, STUB_MAX_MESSAGE, &used, p->argv[i], strlen(p->argv[i]) + 1) < 0) goto done;
    for (uint32_t i = 0; i < h.envc; i++)
        if (append(body, STUB_MAX_MESSAGE, &used, p->envp[i], strlen(p->envp[i]) + 1) < 0) goto done;
    h.length = (uint32_t)used;
    if (hvc_send_fds(prepared->control, &h, sizeof h, (int[3]){ p->stdin_fd, p->stdout_fd, p->stderr_fd }, 3) < 0)
        goto done;
    size_t sent = 0;
    while (sent < used) {
        ssize_t n = write(prepared->control, body + sent, used - sent);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto done;
        sent += (size_t)n;
    }
    rc = 0;
done:
    free(body);
    int saved = errno;
    close(prepared->control);
    if (rc == 0) {
        hvc_collect_reports(prepared->reports, result);
    } else {
        close(prepared->reports);
    }
    result->pid = prepared->pid;
    prepared->control = prepared->reports = -1;
    errno = saved;
    return rc;
}

int hvc_spawn_container_exec(pid_t init_pid, const struct hvc_container *c, const struct hvc_process *p,
                             struct hvc_spawn_result *result) {
    static const char *const kinds[] = { "cgroup", "ipc", "uts", "pid", "mnt" };
    enum { KIND_COUNT = sizeof kinds / sizeof kinds[0] };
    memset(result, 0, sizeof *result);
    int fd;
    pid_t helper = hvc_clone_reporting(0, &fd);
    if (helper < 0) return -1;
    if (helper == 0) {
        int ns[KIND_COUNT];
        char path[64];
        // Open every namespace before entering any: entering mnt changes what /proc means.
        for (int i = 0; i < KIND_COUNT; i++) {
            snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)init_pid, kinds[i]);
            ns[i] = open(path, O_RDONLY | O_CLOEXEC);
            if (ns[i] < 0) fail(fd, HVC_STAGE_NAMESPACES);
        }
        if (join_cgroup(c->delegated_leaf != NULL ? c->delegated_leaf : c->cgroup) < 0) fail(fd, HVC_STAGE_CGROUP);
        for (int i = 0; i < KIND_COUNT; i++) {
            if (setns(ns[i], 0) < 0) fail(fd, HVC_STAGE_NAMESPACES);
            close(ns[i]);
        }
        // A pid namespace applies to children only: the process itself is a sibling of this
        // helper (CLONE_PARENT), so the caller reaps it.
        pid_t pid = raw_clone(CLONE_PARENT);
        if (pid < 0) fail(fd, HVC_STAGE_NAMESPACES);
        if (pid == 0) become_process(p, fd);
        // Report the pid as the caller sees it (the global namespace the helper lives in).
        report(fd, HVC_STAGE_PID, pid);
        _exit(0);
    }
    hvc_collect_reports(fd, result);
    int status;
    while (waitpid(helper, &status, __WALL) < 0 && errno == EINTR) {}
    if (result->pid == 0 && result->stage == 0) {
        result->stage = HVC_STAGE_NAMESPACES;
        result->error = ECHILD;
    }
    return 0;
}

/// stdout_fd < 0: the child keeps the caller's stdio and session.
static int spawn_host_process(const char *path, const char *const *argv, const char *const *envp,
                              int stdout_fd, int stderr_fd, int die_with_parent,
                              struct hvc_spawn_result *result) {
    memset(result, 0, sizeof *result);
    pid_t parent = getpid();
    int fd;
    pid_t pid = hvc_clone_reporting(0, &fd);
    if (pid < 0) return -1;
    if (pid == 0) {
        if (die_with_parent) {
            // Die with the supervisor, even by SIGKILL; check for a parent that died already.
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail(fd, HVC_STAGE_SUPERVISION);
            if (getppid() != parent) _exit(127);
        }
        if (stdout_fd >= 0) {
            // Own session: a Ctrl-C on the user's terminal goes to hvc, not to this process.
            if (setsid() < 0) fail(fd, HVC_STAGE_SUPERVISION);
            int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (null < 0 || dup2(null, 0) < 0 || dup2(stdout_fd, 1) < 0 || dup2(stderr_fd, 2) < 0)
                fail(fd, HVC_STAGE_SUPERVISION);
        }
        // Every other inherited fd closes on exec; the report pipe too, so success is EOF.
        if (syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) < 0) fail(fd, HVC_STAGE_SUPERVISION);
        reset_signals();
        execve(path, (char *const *)argv, (char *const *)envp);
        fail(fd, HVC_STAGE_EXEC);
    }
    hvc_collect_reports(fd, result);
    result->pid = pid;
    return 0;
}

int hvc_spawn_supervised(const char *path, const char *const *argv, const char *const *envp,
                         int stdout_fd, int stderr_fd, struct hvc_spawn_result *result) {
    return spawn_host_process(path, argv, envp, stdout_fd, stderr_fd, 1, result);
}

int hvc_spawn_detached(const char *path, const char *const *argv, const char *const *envp,
                       int output_fd, struct hvc_spawn_result *result) {
    return spawn_host_process(path, argv, envp, output_fd, output_fd, 0, result);
}

int hvc_spawn_inheriting_stdio(const char *path, const char *const *argv, const char *const *envp,
                               struct hvc_spawn_result *result) {
    return spawn_host_process(path, argv, envp, -1, -1, 0, result);
}

int hvc_get_window_size(int fd, uint16_t *rows, uint16_t *columns) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) < 0) return -1;
    *rows = ws.ws_row;
    *columns = ws.ws_col;
    return 0;
}

int hvc_set_window_size(int fd, uint16_t rows, uint16_t columns) {
    struct winsize ws = { .ws_row = rows, .ws_col = columns };
    return ioctl(fd, TIOCSWINSZ, &ws);
}

int hvc_add_entropy(int fd, const uint8_t *bytes, size_t length) {
    _Alignas(struct rand_pool_info) uint8_t buffer[sizeof(struct rand_pool_info) + 512];
    struct rand_pool_info *pool = (struct rand_pool_info *)buffer;
    if (length > 512) length = 512;
    pool->entropy_count = (int)(length * 8);
    pool->buf_size = (int)length;
    memcpy(pool->buf, bytes, length);
    if (ioctl(fd, RNDADDENTROPY, pool) < 0) return -1;
    // Crediting entropy does not reseed the generator at once (it reseeds on a timer early in
    // boot): force it, so that a VM restored from a snapshot does not replay its stream.
    return ioctl(fd, RNDRESEEDCRNG);
}

int hvc_open_pty(int *master, int *slave) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) return -1;
    char name[64];
    if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof name) != 0) {
        int saved = errno;
        close(m);
        errno = saved;
        return -1;
    }
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        int saved = errno;
        close(m);
        errno = saved;
        return -1;
    }
    *master = m;
    *slave = s;
    return 0;
}

int hvc_make_char_device(const char *path, unsigned major, unsigned minor, unsigned mode) {
    if (mknod(path, S_IFCHR | (mode & 0777), makedev(major, minor)) < 0) return -1;
    return chmod(path, mode & 0777);
}

int hvc_take_terminal(int fd) {
    if (setsid() < 0 && getsid(0) != getpid()) return -1;
    return ioctl(fd, TIOCSCTTY, 0);
}

int hvc_open_in_root(const char *root, const char *path, int flags, unsigned mode) {
    int dir = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -1;
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, dir, path, &how, sizeof how);
    int saved = errno;
    close(dir);
    errno = saved;
    return fd;
}

int hvc_set_parent_death_signal(int signal) {
    return prctl(PR_SET_PDEATHSIG, signal);
}
