#ifndef HVC_CJAIL_H
#define HVC_CJAIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "CLinux.h"

/// A read-only (or writable) bind mount into the jail, made inside the jail's mount namespace.
struct hvc_jail_mount {
    const char *source;         /* host path */
    const char *target;         /* path inside the jail root */
    int writable;
    int device;                 /* a device node: keep it usable (no MS_NODEV) */
};

/// One seccomp rule: `syscall` gets `action`. With `arg_mask` non-zero, the rule applies only
/// when (argument `arg_index` & arg_mask) == arg_value.
struct hvc_seccomp_rule {
    const char *syscall;
    int action;                 /* HVC_SECCOMP_ERRNO, HVC_SECCOMP_KILL or HVC_SECCOMP_ALLOW */
    int error;                  /* errno for HVC_SECCOMP_ERRNO */
    unsigned arg_index;
    uint64_t arg_mask;
    uint64_t arg_value;
};

enum { HVC_SECCOMP_ERRNO = 1, HVC_SECCOMP_KILL = 2, HVC_SECCOMP_ALLOW = 3 };

/// Everything between fork and exec of a jailed VMM.
struct hvc_jail {
    const char *root;           /* the jail directory; becomes / */
    const struct hvc_jail_mount *mounts;
    size_t mount_count;
    const char *const *cgroup_procs; /* cgroup.procs files to join */
    size_t cgroup_count;
    uid_t uid;
    gid_t gid;
    gid_t extra_gid;            /* a supplementary group (kvm), or 0 for none */
    uint64_t max_open_files;
    uint64_t max_file_size;
    const struct hvc_seccomp_rule *rules;
    size_t rule_count;
    int seccomp_default_error;  /* calls no rule names fail with this errno; 0: they are allowed */
    int inherit_fds[2];         /* passed to the VMM as its fds 3 and 4; -1 for none */
    int netns_fd;               /* a network namespace to enter, or -1 for a new empty one */
    uint64_t kept_capabilities; /* bit per capability the VMM keeps (ambient), 0 for none */
};

/// Where the jail sequence failed (reported in `hvc_spawn_result.stage`).
enum hvc_jail_stage {
    HVC_JAIL_NAMESPACES = 1,
    HVC_JAIL_CGROUP = 2,
    HVC_JAIL_MOUNTS = 3,
    HVC_JAIL_PIVOT_ROOT = 4,
    HVC_JAIL_RLIMITS = 5,
    HVC_JAIL_CAPABILITIES = 6,
    HVC_JAIL_IDENTITY = 7,
    HVC_JAIL_SECCOMP = 8,
    HVC_JAIL_EXEC = 9,
    HVC_JAIL_STDIO = 10,
};

/// Starts `path` (a path valid inside the jail) jailed: new mount, pid, IPC, UTS and network
/// namespaces (or the given network namespace); the cgroups joined; the jail root with only `mounts` in it entered by pivot_root;
/// rlimits; every capability dropped including the bounding set; no_new_privs; the given uid
/// and gid; the seccomp filter last. It gets SIGKILL when the calling thread's process dies.
/// stdout and stderr go to `output_fd`. Returns 0, or -1 with errno when the clone failed.
int hvc_spawn_jailed(const struct hvc_jail *jail, const char *path, const char *const *argv,
                     const char *const *envp, int output_fd, struct hvc_spawn_result *result);

/// The filesystem magic of `path` (statfs f_type), or 0 when it cannot be read.
uint64_t hvc_filesystem_type(const char *path);

/// Whether libseccomp knows `name` on this architecture.
int hvc_seccomp_syscall_known(const char *name);

/// For a host-side service that reads guest input: no_new_privs, and every capability gone
/// from the bounding, permitted and effective sets but `kept` (a CAP_* number).
int hvc_keep_only_capability(int kept);

/// Installs `rules` in the calling thread (for tests of the filter itself).
int hvc_seccomp_install(const struct hvc_seccomp_rule *rules, size_t count, int default_error);

#endif
