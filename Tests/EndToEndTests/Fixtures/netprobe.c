// UDP probe for hvc's network isolation tests, built static and run inside containers.
//   netprobe listen PORT SECONDS   prints each datagram received within SECONDS, one per line
//   netprobe send ADDRESS PORT TEXT sends TEXT once (broadcast addresses allowed)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "listen") == 0) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
        if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) < 0) { perror("bind"); return 1; }
        printf("listening\n");
        fflush(stdout);
        long long deadline = now_ms() + atoi(argv[3]) * 1000LL;
        for (long long left; (left = deadline - now_ms()) > 0;) {
            struct pollfd p = { .fd = fd, .events = POLLIN };
            if (poll(&p, 1, (int)left) <= 0) continue;
            char buffer[512];
            ssize_t n = recv(fd, buffer, sizeof buffer - 1, 0);
            if (n < 0) continue;
            buffer[n] = 0;
            printf("got %s\n", buffer);
            fflush(stdout);
        }
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "send") == 0) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        int on = 1;
        struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on) < 0 ||
            inet_pton(AF_INET, argv[2], &address.sin_addr) != 1) { perror("socket"); return 1; }
        if (sendto(fd, argv[4], strlen(argv[4]), 0, (struct sockaddr *)&address, sizeof address) < 0) { perror("sendto"); return 1; }
        printf("sent %s\n", argv[4]);
        return 0;
    }
    fprintf(stderr, "usage: netprobe listen PORT SECONDS | netprobe send ADDRESS PORT TEXT\n");
    return 2;
}
