// hostile-agent: /init of a test guest that speaks the agent protocol (Specs/agent-protocol.md)
// badly, to show what the host does with a guest it cannot trust. Never shipped. It finds the
// port the real agent uses, then misbehaves as the file /mode says:
//
//   oversized      after `started`, a frame header whose length is over the 256 KiB bound
//   truncated      instead of answering `start`, the first bytes of a `started` frame, then silence
//   short-payload  after `started`, an `exited` frame whose payload ends inside its fields
//   unknown-kind   after `started`, a frame of a kind the protocol does not have
//   host-kind      after `started`, a valid `hello` (a message only the host sends)
//   stray          after `started`, `stdout` and `exited` for a process the host never started
//   flood          after `started`, full `stdout` frames for process 1, as fast as it can
//   silent         `ready`, then nothing ever (it does not even read)
//   deaf           after `started`, reads every frame and answers none (an `exec` never starts)
//
// Every mode first sends a valid `ready` (and, in a warm pool, answers `warmUp`), and never exits (PID 1 exiting panics the guest,
// which would end the VM on its own): the host has to end it.
// Build: cc -static -O2 -DPROTOCOL_VERSION=N -o init hostile-agent.c
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

#ifndef PROTOCOL_VERSION
#error "build with -DPROTOCOL_VERSION=<Limits.version>"
#endif

enum { HEADER = 9, MAX_PAYLOAD = 256 * 1024, MAX_CHUNK = 32 * 1024 };
enum { HELLO = 1, START = 2, WARM_UP = 8, READY = 64, STARTED = 65, STDOUT = 67, EXITED = 69, WARMED_UP = 72 };

static int port = -1;

static void say(const char *text) { (void)!write(2, text, strlen(text)); }

static void hang(void) {
    for (;;) pause();
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

// A write the host stopped reading (it ended the session) blocks or fails: either way, hang.
static void send_bytes(const void *bytes, size_t length) {
    const uint8_t *p = bytes;
    while (length > 0) {
        ssize_t n = write(port, p, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) hang();
        p += n;
        length -= (size_t)n;
    }
}

static void send_header(uint32_t length, uint8_t kind, uint32_t process) {
    uint8_t header[HEADER];
    put32(header, length);
    header[4] = kind;
    put32(header + 5, process);
    send_bytes(header, sizeof header);
}

static void send_frame(uint8_t kind, uint32_t process, const void *payload, uint32_t length) {
    send_header(length, kind, process);
    send_bytes(payload, length);
}

static void read_exactly(void *buffer, size_t length) {
    uint8_t *p = buffer;
    while (length > 0) {
        ssize_t n = read(port, p, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) hang();
        p += n;
        length -= (size_t)n;
    }
}

// Reads the host's frames (`hello`, ...) until the `start` of process 1; with `forever`, reads
// and drops every frame, for good.
static void read_frames(int forever) {
    static uint8_t payload[MAX_PAYLOAD];
    for (;;) {
        uint8_t header[HEADER];
        read_exactly(header, sizeof header);
        uint32_t length = (uint32_t)header[0] << 24 | header[1] << 16 | header[2] << 8 | header[3];
        uint32_t process = (uint32_t)header[5] << 24 | header[6] << 16 | header[7] << 8 | header[8];
        if (length > MAX_PAYLOAD) hang();
        read_exactly(payload, length);
        // A pooled VM is warmed up first: it answers as the real agent does, to be claimed.
        if (header[4] == WARM_UP && !forever) send_frame(WARMED_UP, 0, NULL, 0);
        if (header[4] == START && process == 1 && !forever) return;
    }
}

static void await_start(void) { read_frames(0); }

static void send_ready(void) {
    uint8_t payload[2 + 8 + 8] = { 0 };
    put16(payload, PROTOCOL_VERSION);
    send_frame(READY, 0, payload, sizeof payload);
}

static void send_started(void) {
    uint8_t payload[4];
    put32(payload, 1);
    send_frame(STARTED, 1, payload, sizeof payload);
}

// The port the host named `hvc.agent`, as the real agent finds it (Sources/hvc-agent/Boot.swift).
static int open_port(void) {
    DIR *dir = opendir("/sys/class/virtio-ports");
    if (!dir) return -1;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (strncmp(entry->d_name, "vport", 5) != 0) continue;
        char path[300], name[64] = { 0 };
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", entry->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t n = read(fd, name, sizeof name - 1);
        close(fd);
        if (n <= 0 || strncmp(name, "hvc.agent", 9) != 0 || (name[9] != '\n' && name[9] != 0)) continue;
        snprintf(path, sizeof path, "/dev/%s", entry->d_name);
        closedir(dir);
        return open(path, O_RDWR);
    }
    closedir(dir);
    return -1;
}

static void flood(void) {
    static uint8_t payload[4 + MAX_CHUNK];
    put32(payload, MAX_CHUNK);
    // Lines of 63 letters: the host's log gets many entries, not one split blob.
    for (size_t i = 0; i < MAX_CHUNK; i++) payload[4 + i] = i % 64 == 63 ? '\n' : 'a' + i % 26;
    for (;;) send_frame(STDOUT, 1, payload, sizeof payload);
}

int main(void) {
    mount("devtmpfs", "/dev", "devtmpfs", 0, "mode=755");
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    int console = open("/dev/console", O_RDWR);
    if (console >= 0) {
        dup2(console, 1);
        dup2(console, 2);
    }
    char mode[32] = { 0 };
    int file = open("/mode", O_RDONLY);
    if (file < 0 || read(file, mode, sizeof mode - 1) <= 0) {
        say("hostile-agent: no /mode\n");
        hang();
    }
    mode[strcspn(mode, "\n")] = 0;
    port = open_port();
    if (port < 0) {
        say("hostile-agent: no port named hvc.agent\n");
        hang();
    }
    say("hostile-agent: ");
    say(mode);
    say("\n");

    send_ready();
    if (strcmp(mode, "silent") == 0) hang();
    await_start();
    if (strcmp(mode, "truncated") == 0) {
        uint8_t payload[4] = { 0 };
        send_header(sizeof payload, STARTED, 1);
        send_bytes(payload, 2);
        hang();
    }
    send_started();

    if (strcmp(mode, "oversized") == 0) {
        // Followed by real bytes, so that a host that buffered before checking would fill up.
        static uint8_t filler[64 * 1024];
        send_header(MAX_PAYLOAD + 1, STDOUT, 1);
        for (;;) send_bytes(filler, sizeof filler);
    } else if (strcmp(mode, "short-payload") == 0) {
        uint8_t payload[2] = { 0 };  // `exited` is u8 how + i32 value: five bytes
        send_frame(EXITED, 1, payload, sizeof payload);
    } else if (strcmp(mode, "unknown-kind") == 0) {
        send_frame(200, 1, "?", 1);
    } else if (strcmp(mode, "host-kind") == 0) {
        // u16 version, bytes entropy, u64 time, string hostname, bool interface, strings name
        // servers, u32 mounts, bool read-only root, string root share, u32 pids, bool nested,
        // u64 writable bytes.
        uint8_t hello[2 + 4 + 8 + 4 + 1 + 4 + 4 + 1 + 4 + 4 + 1 + 8] = { 0 };
        put16(hello, PROTOCOL_VERSION);
        send_frame(HELLO, 0, hello, sizeof hello);
    } else if (strcmp(mode, "stray") == 0) {
        uint8_t output[4 + 6], status[5] = { 0 };
        put32(output, 6);
        memcpy(output + 4, "stray\n", 6);
        send_frame(STDOUT, 7, output, sizeof output);
        send_frame(EXITED, 7, status, sizeof status);
    } else if (strcmp(mode, "flood") == 0) {
        flood();
    } else if (strcmp(mode, "deaf") == 0) {
        read_frames(1);
    } else if (strcmp(mode, "panic") == 0) {
        // PID 1 ending panics the guest kernel ("Attempted to kill init").
        _exit(1);
    } else if (strcmp(mode, "triple-fault") == 0) {
        // The guest kernel resets its CPU by a triple fault (hvc boots it with reboot=t).
        sync();
        reboot(RB_AUTOBOOT);
    } else {
        say("hostile-agent: unknown mode\n");
    }
    hang();
}
