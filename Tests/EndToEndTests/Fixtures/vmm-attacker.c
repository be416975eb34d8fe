// What an escaped VMM would try, run by the isolation suite in QEMU's place (HVC_QEMU): it is
// started exactly as QEMU is — in the VM's jail, as its uid, under its seccomp policy, with its
// descriptors — makes every attempt, prints one line per attempt to its output (the VM's
// qemu.log), then becomes the real QEMU so that the VM comes up as usual.
//
// With `--control` it makes the same attempts unjailed, as root on the host, where each must
// succeed: that shows each attempt would see an escape. Attempts that would change the host are
// made there in a child of their own in a private mount namespace, or not at all.
//
// The targets come from the compiler: -DOTHER_VM_DIR -DOTHER_VMM_PID -DSTATE_ROOT -DRUN_ROOT
// -DHVCD_SOCKET -DOTHER_VOLUME_FILE -DHOST_ADDRESS -DHOST_PORT -DHVC_BINARY.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int control;

static void report(const char *name, int reached, int error, const char *detail) {
    fprintf(stderr, "hvc-attack %s %s %s%s%s\n", name, reached ? "reached" : "denied",
            reached ? "" : strerrorname_np(error) ? strerrorname_np(error) : "?",
            detail[0] ? " " : "", detail);
    fflush(stderr);
}

/// A call's result: 0 or more reached, -1 with errno denied.
static void outcome(const char *name, long result, const char *detail) {
    int error = errno;
    report(name, result >= 0, error, detail);
}

/// Runs `attempt` in a child (in a private mount namespace under --control), reporting its result.
static void in_child(const char *name, long (*attempt)(void)) {
    int pipes[2];
    if (pipe(pipes) != 0) { report(name, 0, errno, "pipe"); return; }
    pid_t pid = fork();
    if (pid == 0) {
        close(pipes[0]);
        if (control && (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)) _exit(99);
        long result = attempt();
        int answer[2] = { result >= 0, errno };
        if (write(pipes[1], answer, sizeof answer) != sizeof answer) _exit(98);
        _exit(0);
    }
    close(pipes[1]);
    int answer[2] = { 0, EIO };
    if (pid < 0 || read(pipes[0], answer, sizeof answer) != sizeof answer) answer[1] = pid < 0 ? errno : EIO;
    close(pipes[0]);
    if (pid > 0) waitpid(pid, NULL, 0);
    report(name, answer[0], answer[1], "");
}

static long try_open(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) close(fd);
    return fd;
}

static long try_connect_unix(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    strncpy(address.sun_path, path, sizeof address.sun_path - 1);
    long result = connect(fd, (struct sockaddr *)&address, sizeof address);
    int error = errno;
    close(fd);
    errno = error;
    return result;
}

static long try_connect_tcp(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, host, &address.sin_addr);
    long result = connect(fd, (struct sockaddr *)&address, sizeof address);
    int error = errno;
    close(fd);
    errno = error;
    return result;
}

static long mount_tmpfs(void) { return mount("none", "/tmp", "tmpfs", 0, NULL); }
static long new_user_namespace(void) { return unshare(CLONE_NEWUSER); }
static long new_mount_namespace(void) { return unshare(CLONE_NEWNS); }
/// The jail sets no core dumps (0, 0); raising a hard limit needs CAP_SYS_RESOURCE.
static long raise_core_limit(void) {
    struct rlimit none = { 0, 0 }, one = { 1, 1 };
    if (control && setrlimit(RLIMIT_CORE, &none) != 0) return -1;
    return setrlimit(RLIMIT_CORE, &one);
}
static long make_device_node(void) {
    long result = mknod("/tmp/hvc-attack-node", S_IFCHR | 0600, makedev(1, 1));
    if (result == 0) unlink("/tmp/hvc-attack-node");
    return result;
}

/// A sealed memfd among the inherited descriptors (a clone's template memory): write to it.
/// A template's capture VM fills its memory legitimately: only a clone (`-incoming`) attacks.
static void template_memory(int clone) {
    if (!control && !clone) return;
    int found = -1;
    char link[256], path[64];
    DIR *fds = opendir("/proc/self/fd");
    struct dirent *entry;
    while (fds && (entry = readdir(fds))) {
        snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n > 0) { link[n] = 0; if (strncmp(link, "/memfd:", 7) == 0) found = atoi(entry->d_name); }
    }
    if (fds) closedir(fds);
    if (control) found = memfd_create("unsealed", 0), ftruncate(found, 4096);
    if (found < 0) { fprintf(stderr, "hvc-attack template-memory-write absent\n"); return; }
    char byte = 1;
    outcome("template-memory-write", pwrite(found, &byte, 1, 0), "");
    void *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, found, 0);
    outcome("template-memory-shared-map", shared == MAP_FAILED ? -1 : 0, "");
    outcome("template-memory-truncate", ftruncate(found, 0), "");
    // Opened again read-write through /proc, as QEMU opens its memory: the seals must refuse
    // the write and the shared mapping there too.
    snprintf(path, sizeof path, "/proc/self/fd/%d", found);
    int again = open(path, O_RDWR | O_CLOEXEC);
    if (again < 0) { outcome("template-memory-reopened-write", -1, "(no read-write reopen)"); return; }
    outcome("template-memory-reopened-write", pwrite(again, &byte, 1, 0), "");
    shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, again, 0);
    outcome("template-memory-reopened-shared-map", shared == MAP_FAILED ? -1 : 0, "");
    close(again);
}

static void devices(void) {
    char names[1024] = "";
    int count = 0;
    DIR *dev = opendir("/dev");
    struct dirent *entry;
    while (dev && (entry = readdir(dev))) {
        if (entry->d_name[0] == '.') continue;
        count++;
        if (strlen(names) + strlen(entry->d_name) + 2 < sizeof names) strcat(strcat(names, ","), entry->d_name);
    }
    if (dev) closedir(dev);
    // Reached: any device beyond what QEMU is given (null, urandom, kvm).
    int extra = 0;
    char copy[1024];
    strcpy(copy, names);
    for (char *name = strtok(copy, ","); name; name = strtok(NULL, ","))
        if (strcmp(name, "null") && strcmp(name, "urandom") && strcmp(name, "kvm")) extra++;
    errno = ENOENT;
    report("devices", extra > 0, ENOENT, names[0] ? names + 1 : "none");
    outcome("open-dev-kmsg", try_open("/dev/kmsg"), "");
    outcome("open-dev-mem", try_open("/dev/mem"), "");
}

/// The host's files under /usr: the jail's /usr is a tree of QEMU's own files (and this
/// program), so neither the host's other programs nor its data are there, nor hvc's binaries.
static void host_files(void) {
    outcome("usr-python", try_open("/usr/bin/python3"), "");
    outcome("usr-nft", try_open("/usr/sbin/nft"), "");
    outcome("usr-share-doc", try_open("/usr/share/doc"), "");
    outcome("hvc-binary", try_open(HVC_BINARY), "");
    // Reached: any program in /usr/bin but QEMU.
    int others = 0;
    DIR *bin = opendir("/usr/bin");
    struct dirent *entry;
    while (bin && (entry = readdir(bin))) {
        if (entry->d_name[0] != '.' && strcmp(entry->d_name, "qemu-system-x86_64") != 0) others++;
    }
    if (bin) closedir(bin);
    char detail[64];
    snprintf(detail, sizeof detail, "(%d other programs)", others);
    report("usr-bin-programs", others > 0, ENOENT, others > 0 ? detail : "only qemu-system-x86_64");
}

int main(int argc, char **argv) {
    control = argc > 1 && strcmp(argv[1], "--control") == 0;
#ifdef ATTACKS_DISABLED
    // The isolation suite's broken variant: in the jail it only becomes QEMU.
    if (!control) goto become_qemu;
#endif
    char other_pid[32];
    snprintf(other_pid, sizeof other_pid, "%d", OTHER_VMM_PID);
    char path[512];

    outcome("other-vm-console-log", try_open(OTHER_VM_DIR "/root/console.log"), "");
    outcome("other-vm-agent-socket", try_connect_unix(OTHER_VM_DIR "/root/agent.sock"), "");
    outcome("other-volume", try_open(OTHER_VOLUME_FILE), "");
    outcome("image-store", try_open(STATE_ROOT "/images"), "");
    outcome("state-directory", try_open(STATE_ROOT "/containers"), "");
    outcome("run-directory", try_open(RUN_ROOT), "");
    outcome("hvcd-socket", try_connect_unix(HVCD_SOCKET), "");
    snprintf(path, sizeof path, "/proc/%d/mem", OTHER_VMM_PID);
    outcome("other-vmm-memory", try_open(path), "");
    outcome("signal-other-vmm", kill(OTHER_VMM_PID, 0), "");
    long traced = ptrace(PTRACE_SEIZE, OTHER_VMM_PID, NULL, NULL);
    outcome("ptrace-other-vmm", traced, "");
    if (traced == 0) ptrace(PTRACE_DETACH, OTHER_VMM_PID, NULL, NULL);
    char buffer[8];
    struct iovec local = { buffer, sizeof buffer }, remote = { (void *)0x400000, sizeof buffer };
    long read = process_vm_readv(OTHER_VMM_PID, &local, 1, &remote, 1, 0);
    // Reading a wrong address (EFAULT) still means the process was reachable.
    outcome("read-other-vmm-memory", read < 0 && errno == EFAULT ? 0 : read, "");
    outcome("host-loopback", try_connect_tcp("127.0.0.1", HOST_PORT), "");
    outcome("host-address", try_connect_tcp(HOST_ADDRESS, HOST_PORT), "");
    int raw = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    outcome("raw-packet-socket", raw, "");
    if (raw >= 0) close(raw);
    in_child("mount", mount_tmpfs);
    in_child("new-user-namespace", new_user_namespace);
    in_child("new-mount-namespace", new_mount_namespace);
    in_child("raise-rlimit", raise_core_limit);
    in_child("device-node", make_device_node);
    // io_uring's operations would run beside the seccomp filter, which sees only the setup.
    char params[120] = { 0 };
    long ring = syscall(SYS_io_uring_setup, 1, params);
    outcome("io-uring", ring, "");
    if (ring >= 0) close((int)ring);
    // EBADF means the permission check passed and only the file descriptor was wrong.
    long module = syscall(SYS_finit_module, -1, "", 0);
    outcome("load-kernel-module", module < 0 && errno == EBADF ? 0 : module,
            control && module < 0 && errno == ENOSYS ? "(this host's kernel loads no modules)" : "");
    union bpf_attr map = { .map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1 };
    long bpf = syscall(SYS_bpf, BPF_MAP_CREATE, &map, sizeof map);
    outcome("bpf", bpf, "");
    if (bpf >= 0) close((int)bpf);
    struct perf_event_attr event = { .type = PERF_TYPE_SOFTWARE, .size = sizeof event, .config = PERF_COUNT_SW_CPU_CLOCK };
    long perf = syscall(SYS_perf_event_open, &event, -1, 0, -1, 0);
    outcome("perf-event-all-cpus", perf, "");
    if (perf >= 0) close((int)perf);
    int clone = 0;
    for (int i = 1; i < argc; i++) clone |= strcmp(argv[i], "-incoming") == 0;
    template_memory(clone);
    devices();
    host_files();
    if (control) return 0;
#ifdef ATTACKS_DISABLED
become_qemu:
#endif
    argv[0] = "/usr/bin/qemu-system-x86_64";
    execv(argv[0], argv);
    fprintf(stderr, "hvc-attack exec-qemu failed %s\n", strerror(errno));
    return 1;
}
