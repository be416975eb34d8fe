#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

int hvc_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int hvc_epoll_add(int epoll, int fd, uint64_t token) {
    struct epoll_event event = { .events = EPOLLIN, .data = { .u64 = token } };
    return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
}

int hvc_epoll_remove(int epoll, int fd) {
    struct epoll_event event = { 0 };
    return epoll_ctl(epoll, EPOLL_CTL_DEL, fd, &event);
}

int hvc_epoll_wait(int epoll, uint64_t *tokens, int max, int timeout_ms) {
    struct epoll_event events[64];
    if (max > 64) max = 64;
    int count = epoll_wait(epoll, events, max, timeout_ms);
    for (int i = 0; i < count; i++) tokens[i] = events[i].data.u64;
    return count;
}

int hvc_inotify_init(void) { return inotify_init1(IN_NONBLOCK | IN_CLOEXEC); }

int hvc_inotify_add_watch(int inotify, const char *path, uint32_t mask) { return inotify_add_watch(inotify, path, mask); }

int hvc_inotify_rm_watch(int inotify, int watch) { return inotify_rm_watch(inotify, watch); }

int hvc_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
