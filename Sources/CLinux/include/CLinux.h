#ifndef HVC_CLINUX_H
#define HVC_CLINUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// The CPU's time-stamp counter, read to measure its frequency against the system clock; 0
/// where there is none.
static inline uint64_t hvc_rdtsc(void) {
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    return 0;
#endif
}

/// What went wrong in a child between fork and exec, reported to the parent through a pipe.
enum hvc_child_stage {
    HVC_STAGE_PID = 0,          /* not an error: value is the final child's pid */
    HVC_STAGE_CGROUP = 1,       /* joining the container cgroup, or its namespace */
    HVC_STAGE_MOUNTS = 2,       /* /proc, /sys, /dev inside the container root */
    HVC_STAGE_HOSTNAME = 3,
    HVC_STAGE_PIVOT_ROOT = 4,
    HVC_STAGE_NAMESPACES = 5,   /* entering a running container's namespaces */
    HVC_STAGE_STDIO = 6,        /* session, stdio, controlling terminal */
    HVC_STAGE_IDENTITY = 7,     /* setgroups/setgid/setuid */
    HVC_STAGE_CWD = 8,          /* chdir to the working directory */
    HVC_STAGE_EXEC = 9,         /* execve: value is its errno (ENOENT, EACCES, ...) */
    HVC_STAGE_SUPERVISION = 10, /* parent-death signal, session, fds of a host helper */
    HVC_STAGE_PRIVILEGES = 11,  /* rlimits, capabilities, no_new_privs */
};

/// What a container's process may do beyond its identity, as an OCI bundle's `process` says:
/// resource limits, capability sets, no_new_privs. All zero: what the process would have anyway.
enum { HVC_MAX_RLIMITS = 16 };
struct hvc_privileges {
    uint32_t rlimit_count;
    uint32_t restrict_capabilities;   /* 0: keep the capabilities the identity gives */
    uint32_t no_new_privileges;
    uint32_t reserved;
    struct { uint32_t resource, reserved; uint64_t soft, hard; } rlimits[HVC_MAX_RLIMITS];
    uint64_t bounding, effective, permitted, inheritable, ambient;
};

/// Adds a resource limit; -1 (E2BIG) when there are HVC_MAX_RLIMITS already, or EINVAL for a
/// resource the kernel does not have.
int hvc_privileges_add_rlimit(struct hvc_privileges *privileges, uint32_t resource, uint64_t soft, uint64_t hard);

/// A process to exec inside a container. Every pointer must stay valid until spawn returns.
struct hvc_process {
    const char *const *argv;      /* NULL-terminated; argv[0] is looked up in path if it has no '/' */
    const char *const *envp;      /* NULL-terminated */
    const char *path;             /* the container's PATH, for the lookup */
    const char *cwd;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t group_count;
    int stdin_fd, stdout_fd, stderr_fd;
    int terminal;                 /* stdin is a pty slave: make it the controlling terminal */
    struct hvc_privileges privileges;
};

/// The container a process runs in.
struct hvc_container {
    const char *rootfs;           /* a mount point, becomes / */
    const char *hostname;
    const char *cgroup;           /* cgroup v2 directory to join, or NULL */
    /* A child of `cgroup` where the container's processes live while the container manages
       the cgroup tree below `cgroup` itself (mounted writable), or NULL: they live in `cgroup`,
       mounted read-only. */
    const char *delegated_leaf;
};

/// Result of a spawn: the pid, or the stage and errno at which the child failed.
struct hvc_spawn_result {
    pid_t pid;
    int stage;
    int error;
};

/// clone(flags | SIGCHLD) like fork, with a close-on-exec pipe for the child's reports: in the
/// child returns 0 and sets `*report_fd` to the write end, in the parent returns the pid and
/// sets it to the read end. -1 with errno when the clone fails.
pid_t hvc_clone_reporting(unsigned long flags, int *report_fd);
/// In a child: reports `stage` and errno through `report_fd`, then exits 127.
_Noreturn void hvc_child_fail(int report_fd, int stage);
/// In the parent: reads the child's reports until it execs (EOF) or dies; closes `fd`.
void hvc_collect_reports(int fd, struct hvc_spawn_result *result);
/// Empties the signal mask and resets every disposition (for a child about to exec).
void hvc_reset_signals(void);

/// Starts the container's first process as PID 1 of new pid, mount, UTS, IPC and cgroup
/// namespaces, with /proc, /sys, /dev and the cgroup filesystem mounted inside `rootfs`.
/// Returns 0, or -1 with errno when the clone itself failed; child failures are in `result`.
int hvc_spawn_container_init(const struct hvc_container *container, const struct hvc_process *process,
                             struct hvc_spawn_result *result);

/// A container set up ahead of its process: namespaces, cgroup, mounts and pivot_root done
/// around a stub process that waits for what to become. `stage`/`error` say why set-up failed
/// (then pid is 0).
struct hvc_prepared_container {
    pid_t pid;
    int control;                  /* where the process to become is sent */
    int reports;                  /* the stub's report pipe, read end */
    int stage;
    int error;
};

/// Prepares a container whose first process comes later (hvc_start_prepared_container).
/// Returns 0 (check `stage`), or -1 with errno when the clone itself failed.
int hvc_prepare_container(const struct hvc_container *container, struct hvc_prepared_container *prepared);

/// Prepares a pod member: a container of its own (pid and mount namespaces, cgroup, root) in the
/// UTS and IPC namespaces of `pod_init` (the pod's first container) and the caller's network.
/// Start it with an empty hostname. Returns as hvc_prepare_container does.
int hvc_prepare_member_container(pid_t pod_init, const struct hvc_container *container, struct hvc_prepared_container *prepared);

/// Hands the stub its process and the container's hostname, and collects its reports until it
/// has exec'd or failed, as hvc_spawn_container_init does. Consumes `prepared`'s descriptors.
int hvc_start_prepared_container(struct hvc_prepared_container *prepared, const char *hostname,
                                 const struct hvc_process *process, struct hvc_spawn_result *result);

/// Starts a further process inside the namespaces and cgroup of `init_pid`, as a child of the
/// caller (so the caller can wait for it).
int hvc_spawn_container_exec(pid_t init_pid, const struct hvc_container *container,
                             const struct hvc_process *process, struct hvc_spawn_result *result);

/// Starts a host helper (the VMM): new session, stdin from /dev/null, stdout/stderr to the
/// given fds, every other fd closed, killed with SIGKILL when the calling thread's process dies.
int hvc_spawn_supervised(const char *path, const char *const *argv, const char *const *envp,
                         int stdout_fd, int stderr_fd, struct hvc_spawn_result *result);

/// Starts a detached process (a container supervisor): new session, stdin from /dev/null,
/// stdout/stderr to the given fd, every other fd closed. It outlives the caller.
int hvc_spawn_detached(const char *path, const char *const *argv, const char *const *envp,
                       int output_fd, struct hvc_spawn_result *result);

/// Starts a process that keeps the caller's stdin, stdout and stderr (and nothing else) and
/// its session: an OCI runtime's container process, whose stdio its caller gave.
int hvc_spawn_inheriting_stdio(const char *path, const char *const *argv, const char *const *envp,
                               struct hvc_spawn_result *result);

/// prctl(PR_SET_PDEATHSIG): `signal` when the parent (thread) that made this process ends.
int hvc_set_parent_death_signal(int signal);

/// ioctl(TIOCGWINSZ); returns 0 or -1 with errno.
int hvc_get_window_size(int fd, uint16_t *rows, uint16_t *columns);
/// ioctl(TIOCSWINSZ); returns 0 or -1 with errno.
int hvc_set_window_size(int fd, uint16_t rows, uint16_t columns);
/// ioctl(RNDADDENTROPY) then ioctl(RNDRESEEDCRNG): credits `length` bytes to the kernel RNG
/// and reseeds it now (needs CAP_SYS_ADMIN).
int hvc_add_entropy(int fd, const uint8_t *bytes, size_t length);
/// openat2 of `path` with `root` as its root (RESOLVE_IN_ROOT): symlinks and `..` in the path
/// cannot leave `root`. For files inside a container's root filesystem. fd or -1 with errno.
int hvc_open_in_root(const char *root, const char *path, int flags, unsigned mode);
/// Flags for hvc_mount_tree_open.
enum { HVC_MOUNT_READONLY = 1, HVC_MOUNT_NOSUID = 2, HVC_MOUNT_NODEV = 4 };
/// A detached copy of the mount tree at `path` (open_tree, recursive) with the flags set on every
/// mount in it. With `beneath`, `path` is relative and may not leave that directory (no `..`,
/// absolute symlinks or magic links out of it). Returns the tree's fd or -1 with errno.
int hvc_mount_tree_open(const char *beneath, const char *path, unsigned flags);

/// One mount for hvc_mounts_place: a detached tree (`tree` >= 0) or a tmpfs (`tree` == -1).
struct hvc_placed_mount {
    int tree;
    const char *target;         /* absolute, in the other namespace */
    const char *tmpfs_options;  /* tmpfs mount data, or NULL */
    int create;                 /* make the target (and its parents) first: a file for a file tree */
};
/// In a child that enters the mount namespace of `pid`: first, when `root` is a detached tree
/// (not -1), makes it that namespace's root (pivot_root; /proc, /sys and /dev move onto it),
/// then places each mount in order, then (when `readonly_root`) makes the root read-only.
/// Returns 0 with the failing stage and errno in `result`, or -1 with errno when no child could be made.
int hvc_mounts_place(pid_t pid, int root, const struct hvc_placed_mount *mounts, size_t count, int readonly_root,
                     struct hvc_spawn_result *result);
/// In a child that enters the mount namespace of `pid`: detaches the mounts at `targets`
/// (absolute, in that namespace); one that is not there is no error. Returns 0, or -1 with errno.
int hvc_mounts_detach(pid_t pid, const char *const *targets, size_t count);
/// Attaches the open file `fd` to a free loop device (asked of /dev/loop-control), read-only
/// when `read_only`, detached again when its last user goes; writes the device's path to
/// `path` (`size` bytes). Returns the device's fd, to hold until it is mounted, or -1 with errno.
int hvc_loop_attach(int fd, int read_only, char *path, size_t size);
/// Copies the tree in directory `from` into directory `to` (open fds): directories, regular
/// files and symlinks, with owners, modes (without set-ID bits) and times; nothing followed out
/// of `from`, at most 64 levels. Returns 0, or -1 with errno at the first failure.
int hvc_copy_tree(int from, int to, int depth);
/// renameat2(RENAME_EXCHANGE): swaps two existing paths at once, so that a reader of either
/// sees the old or the new, never neither. Returns 0, or -1 with errno.
int hvc_rename_exchange(const char *a, const char *b);

/// Opens a pseudo-terminal pair; returns 0 or -1 with errno.
int hvc_open_pty(int *master, int *slave);
/// Makes this process a session leader with terminal `fd` as its controlling terminal, so that
/// the terminal's resizes reach it as SIGWINCH. Returns 0, or -1 with errno.
int hvc_take_terminal(int fd);
/// Makes character device `path` (major, minor) with exactly `mode`'s permission bits.
/// Returns 0, or -1 with errno.
int hvc_make_char_device(const char *path, unsigned major, unsigned minor, unsigned mode);

/// pipe2(O_CLOEXEC); returns 0 or -1 with errno.
int hvc_pipe(int fds[2]);
/// Blocks SIGCHLD in the calling thread and returns a non-blocking signalfd for it, or -1.
int hvc_signalfd_sigchld(void);

/// reboot(RB_AUTOBOOT): with `reboot=t` on the kernel command line and QEMU's -no-reboot,
/// the quickest way for a guest to end its VM.
void hvc_reboot(void);

/// socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC) connected to `path`; returns the fd or -1 with errno.
int hvc_unix_connect(const char *path);

/// socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC) bound to `path` (mode 0600) and listening; `path`
/// appears only once it listens (EADDRINUSE when it exists).
int hvc_unix_listen(const char *path, int backlog);
/// accept4(2) with SOCK_CLOEXEC: the next connection on a listening socket, or -1 with errno.
int hvc_accept(int listener);
/// socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC); returns 0 or -1 with errno.
int hvc_socketpair(int fds[2]);
/// The uid, gid and pid of a Unix socket's peer (SO_PEERCRED); returns 0 or -1 with errno.
int hvc_peer_credentials(int fd, uid_t *uid, gid_t *gid, pid_t *pid);
/// Sends `length` bytes with `fd` attached (SCM_RIGHTS); returns 0 or -1 with errno.
int hvc_send_with_fd(int sock, const void *bytes, size_t length, int fd);
/// Sends `length` bytes with `count` (at most 8) descriptors attached.
int hvc_send_fds(int sock, const void *bytes, size_t length, const int *fds, size_t count);

/// memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); returns the fd or -1 with errno.
int hvc_memfd(const char *name);
/// Seals a memfd against every change (write, shrink, grow, further seals).
int hvc_seal_contents(int fd);
/// 1 when `fd` carries all of hvc_seal_contents's seals, 0 when not, -1 with errno.
int hvc_contents_sealed(int fd);

/// Makes a network namespace and bind-mounts it at `path` (a new file): loopback up, IPv6
/// off. Returns 0 or -1 with errno; on failure nothing is left at `path`.
int hvc_netns_create(const char *path);
/// Gives the calling thread a new, empty network namespace; 0 or -1 with errno.
int hvc_netns_unshare(void);
/// Moves the calling thread into the network namespace at `path`; 0 or -1 with errno.
int hvc_netns_enter(const char *path);
/// Unmounts and removes a namespace made by hvc_netns_create (gone already is not an error).
int hvc_netns_remove(const char *path);
/// Creates TAP device `name` (with virtio-net headers, persistent: it goes with its namespace)
/// in the namespace at `netns_path`, sets its MTU and brings it up; returns its fd
/// (close-on-exec) or -1 with errno.
int hvc_tap_open(const char *netns_path, const char *name, int mtu);
/// Brings interface `name` of the current network namespace up.
int hvc_interface_up(const char *name);
/// Gives interface `name` its MAC, IPv4 address and netmask (network byte order) and MTU, and
/// brings it up.
int hvc_interface_configure(const char *name, const uint8_t mac[6], uint32_t address, uint32_t netmask, int mtu);
/// Adds the default IPv4 route through `gateway` (network byte order).
int hvc_route_add_default(uint32_t gateway);

/// epoll_create1(EPOLL_CLOEXEC); the fd or -1 with errno.
int hvc_epoll_create(void);
/// Adds `fd` to the set, reported by `token` when readable (level-triggered); 0 or -1 with errno.
int hvc_epoll_add(int epoll, int fd, uint64_t token);
/// Takes `fd` out of the set; 0 or -1 with errno.
int hvc_epoll_remove(int epoll, int fd);
/// epoll_wait(2): fills `tokens` with those of ready fds (at most `max`, at most 64); returns
/// their count or -1 with errno.
int hvc_epoll_wait(int epoll, uint64_t *tokens, int max, int timeout_ms);

/// Flags of inotify(7) events and watches.
enum {
    HVC_IN_MODIFY = 0x00000002, HVC_IN_ATTRIB = 0x00000004, HVC_IN_MOVED_FROM = 0x00000040,
    HVC_IN_MOVED_TO = 0x00000080, HVC_IN_CREATE = 0x00000100, HVC_IN_DELETE = 0x00000200,
    HVC_IN_DELETE_SELF = 0x00000400, HVC_IN_MOVE_SELF = 0x00000800, HVC_IN_IGNORED = 0x00008000,
};
/// inotify_init1(IN_NONBLOCK | IN_CLOEXEC); the fd or -1 with errno.
int hvc_inotify_init(void);
/// inotify_add_watch(2); the watch or -1 with errno.
int hvc_inotify_add_watch(int inotify, const char *path, uint32_t mask);
/// inotify_rm_watch(2); 0 or -1 with errno.
int hvc_inotify_rm_watch(int inotify, int watch);

/// pidfd_open(2): a descriptor that becomes readable when process `pid` ends; -1 with errno.
int hvc_pidfd_open(pid_t pid);

#endif
