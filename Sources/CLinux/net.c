// Network namespaces and interfaces: the host's per-VM namespace and TAP device, and the
// guest's own interface set-up. Plain ioctls, no netlink: the bridge, veth, addresses and
// rules on the host are made by the CNI plugins and nft.
#define _GNU_SOURCE
#include "CLinux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int copy_name(struct ifreq *request, const char *name) {
    memset(request, 0, sizeof *request);
    if (strlen(name) >= IFNAMSIZ) { errno = ENAMETOOLONG; return -1; }
    strncpy(request->ifr_name, name, IFNAMSIZ - 1);
    return 0;
}

/// Sets IFF_UP on `name` through the control socket `sock` (of the current network namespace).
static int set_up(int sock, const char *name) {
    struct ifreq request;
    if (copy_name(&request, name) < 0 || ioctl(sock, SIOCGIFFLAGS, &request) < 0) return -1;
    request.ifr_flags |= IFF_UP;
    return ioctl(sock, SIOCSIFFLAGS, &request);
}

static int set_mtu(int sock, const char *name, int mtu) {
    struct ifreq request;
    if (copy_name(&request, name) < 0) return -1;
    request.ifr_mtu = mtu;
    return ioctl(sock, SIOCSIFMTU, &request);
}

static void write_sysctl(const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t ignored = write(fd, value, strlen(value));
    (void)ignored;
    close(fd);
}

// Namespace work happens on a thread of its own: setns and unshare change only the calling
// thread's network namespace, and that thread ends with the work.
struct netns_job {
    const char *path;
    const char *tap;
    int mtu;
    int result;
    int error;
};

static void *create_netns(void *argument) {
    struct netns_job *job = argument;
    job->result = -1;
    if (unshare(CLONE_NEWNET) < 0) { job->error = errno; return NULL; }
    // No IPv6 on the VM's side of the bridge: its addresses and rules are IPv4.
    write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
    write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || set_up(sock, "lo") < 0) { job->error = errno; if (sock >= 0) close(sock); return NULL; }
    close(sock);
    if (mount("/proc/thread-self/ns/net", job->path, NULL, MS_BIND, NULL) < 0) { job->error = errno; return NULL; }
    job->result = 0;
    return NULL;
}

static void *open_tap(void *argument) {
    struct netns_job *job = argument;
    job->result = -1;
    if (hvc_netns_enter(job->path) < 0) { job->error = errno; return NULL; }
    int tap = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tap < 0) { job->error = errno; return NULL; }
    struct ifreq request;
    if (copy_name(&request, job->tap) < 0) { job->error = errno; close(tap); return NULL; }
    request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    int sock = -1;
    // Persistent: closing the last fd then leaves the device to its namespace, whose teardown
    // (asynchronous, in the kernel's cleanup work) unregisters it with the veth in one batch,
    // instead of a synchronous unregister in whoever closes it last.
    if (ioctl(tap, TUNSETIFF, &request) < 0 || ioctl(tap, TUNSETPERSIST, 1) < 0 ||
        (sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
        set_mtu(sock, job->tap, job->mtu) < 0 || set_up(sock, job->tap) < 0) {
        job->error = errno;
        if (sock >= 0) close(sock);
        close(tap);
        return NULL;
    }
    close(sock);
    job->result = tap;
    return NULL;
}

static int run_job(void *(*work)(void *), struct netns_job *job) {
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, work, job);
    if (rc != 0) { errno = rc; return -1; }
    pthread_join(thread, NULL);
    if (job->result < 0) errno = job->error;
    return job->result;
}

int hvc_netns_create(const char *path) {
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    close(fd);
    struct netns_job job = { .path = path };
    if (run_job(create_netns, &job) < 0) {
        int saved = errno;
        unlink(path);
        errno = saved;
        return -1;
    }
    return 0;
}

int hvc_netns_remove(const char *path) {
    if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) return -1;
    if (unlink(path) < 0 && errno != ENOENT) return -1;
    return 0;
}

int hvc_tap_open(const char *netns_path, const char *name, int mtu) {
    struct netns_job job = { .path = netns_path, .tap = name, .mtu = mtu };
    return run_job(open_tap, &job);
}

int hvc_interface_up(const char *name) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -1;
    int rc = set_up(sock, name);
    int saved = errno;
    close(sock);
    errno = saved;
    return rc;
}

int hvc_interface_configure(const char *name, const uint8_t mac[6], uint32_t address, uint32_t netmask, int mtu) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -1;
    struct ifreq request;
    int rc = -1;
    if (copy_name(&request, name) < 0) goto out;
    request.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
    memcpy(request.ifr_hwaddr.sa_data, mac, 6);
    if (ioctl(sock, SIOCSIFHWADDR, &request) < 0) goto out;
    if (set_mtu(sock, name, mtu) < 0) goto out;
    struct sockaddr_in *in = (struct sockaddr_in *)&request.ifr_addr;
    if (copy_name(&request, name) < 0) goto out;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = address;
    if (ioctl(sock, SIOCSIFADDR, &request) < 0) goto out;
    if (copy_name(&request, name) < 0) goto out;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = netmask;
    if (ioctl(sock, SIOCSIFNETMASK, &request) < 0) goto out;
    rc = set_up(sock, name);
out:;
    int saved = errno;
    close(sock);
    errno = saved;
    return rc;
}

int hvc_route_add_default(uint32_t gateway) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -1;
    struct rtentry route;
    memset(&route, 0, sizeof route);
    struct sockaddr_in *dst = (struct sockaddr_in *)&route.rt_dst;
    struct sockaddr_in *gw = (struct sockaddr_in *)&route.rt_gateway;
    struct sockaddr_in *mask = (struct sockaddr_in *)&route.rt_genmask;
    dst->sin_family = gw->sin_family = mask->sin_family = AF_INET;
    gw->sin_addr.s_addr = gateway;
    route.rt_flags = RTF_UP | RTF_GATEWAY;
    int rc = ioctl(sock, SIOCADDRT, &route);
    int saved = errno;
    close(sock);
    errno = saved;
    return rc;
}

int hvc_netns_enter(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = setns(fd, CLONE_NEWNET);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int hvc_netns_unshare(void) {
    return unshare(CLONE_NEWNET);
}
