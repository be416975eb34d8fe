// /init of the hvc guest initramfs. A static Swift binary aborts before main unless /proc is
// mounted, so this mounts /proc and /dev, gives the agent a console on fds 0-2, and execs it.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <stddef.h>
#include <unistd.h>

static void say(const char *text) {
    size_t n = 0;
    while (text[n]) n++;
    (void)!write(2, text, n);
}

int main(void) {
    // pivot_root refuses to move away from the initial rootfs. Bind the rootfs onto /sysroot,
    // step into that mount, move it over / and chroot into it (switch_root's idiom): the
    // container's pivot_root later has a real mount to leave.
    if (mount("/", "/sysroot", NULL, MS_BIND, NULL) < 0 || chdir("/sysroot") < 0 ||
        mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0)
        say("preinit: cannot stack a mount on the initial rootfs\n");
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=755");
    int fd = open("/dev/console", O_RDWR);
    if (fd < 0) fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) close(fd);
    }
    char *const argv[] = { "hvc-agent", NULL };
    char *const envp[] = { "PATH=/sbin", NULL };
    execve("/sbin/hvc-agent", argv, envp);
    say("preinit: cannot exec /sbin/hvc-agent\n");
    reboot(RB_AUTOBOOT);
    return 1;
}
