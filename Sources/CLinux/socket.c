#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/// A Unix stream socket and the address of `path`; returns the fd or -1 with errno.
static int unix_socket(const char *path, struct sockaddr_un *address) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    size_t length = strlen(path);
    if (length >= sizeof address->sun_path) { errno = ENAMETOOLONG; return -1; }
    memcpy(address->sun_path, path, length + 1);
    return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

int hvc_unix_connect(const char *path) {
    struct sockaddr_un address;
    int fd = unix_socket(path, &address);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int hvc_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int hvc_signalfd_sigchld(void) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) return -1;
    return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

void hvc_reboot(void) {
    sync();
    reboot(RB_AUTOBOOT);
}

int hvc_unix_listen(const char *path, int backlog) {
    // The socket is made under a name beside `path` and renamed once it listens: a client
    // that finds `path` is never refused (bind makes the file before listen takes clients).
    struct sockaddr_un address;
    char staged[sizeof address.sun_path];
    int length = snprintf(staged, sizeof staged, "%s.new", path);
    int in_place = length < 0 || (size_t)length >= sizeof staged;
    const char *bound = in_place ? path : staged;
    int fd = unix_socket(bound, &address);
    if (fd < 0) return -1;
    if (!in_place) unlink(staged);
    // The socket's directory is private to the supervisor; the mode narrows it further.
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0 || chmod(bound, 0600) < 0 ||
        listen(fd, backlog) < 0 || (!in_place && renameat2(AT_FDCWD, staged, AT_FDCWD, path, RENAME_NOREPLACE) < 0)) {
        int saved = errno == EEXIST ? EADDRINUSE : errno;
        if (!in_place) unlink(staged);
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int hvc_socketpair(int fds[2]) { return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds); }

int hvc_peer_credentials(int fd, uid_t *uid, gid_t *gid, pid_t *pid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0) return -1;
    *uid = credentials.uid;
    *gid = credentials.gid;
    *pid = credentials.pid;
    return 0;
}

int hvc_send_with_fd(int sock, const void *bytes, size_t length, int fd) {
    return hvc_send_fds(sock, bytes, length, &fd, 1);
}

int hvc_send_fds(int sock, const void *bytes, size_t length, const int *fds, size_t count) {
    if (count == 0 || count > 8) { errno = EINVAL; return -1; }
    struct iovec iov = { (void *)bytes, length };
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int) * 8)]; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = { 0 };
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.space;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * count);
    memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
    ssize_t sent;
    do { sent = sendmsg(sock, &message, MSG_NOSIGNAL); } while (sent < 0 && errno == EINTR);
    if (sent < 0) return -1;
    if ((size_t)sent != length) { errno = EIO; return -1; }
    return 0;
}

int hvc_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

int hvc_seal_contents(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
}

int hvc_contents_sealed(int fd) {
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0) return -1;
    int wanted = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    return (seals & wanted) == wanted;
}

int hvc_accept(int listener) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}
