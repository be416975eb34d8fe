// kvmprobe: proves a working /dev/kvm. Opens it, checks the API version, makes a VM with one
// vCPU in real mode whose code writes one byte to I/O port 0x3f8 and halts, runs it, and
// prints the byte. Exit 0 when the byte came out and the vCPU halted; 1 otherwise.
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int fail(const char *what) {
    fprintf(stderr, "kvmprobe: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(void) {
    // mov dx, 0x3f8; mov al, 'K'; out dx, al; hlt
    const uint8_t code[] = { 0xba, 0xf8, 0x03, 0xb0, 'K', 0xee, 0xf4 };
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) return fail("open /dev/kvm");
    int version = ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        fprintf(stderr, "kvmprobe: API version %d, want %d\n", version, KVM_API_VERSION);
        return 1;
    }
    int vm = ioctl(kvm, KVM_CREATE_VM, 0UL);
    if (vm < 0) return fail("KVM_CREATE_VM");
    uint8_t *memory = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return fail("mmap guest memory");
    memcpy(memory, code, sizeof code);
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0x1000, .memory_size = 0x1000, .userspace_addr = (uint64_t)(uintptr_t)memory,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) return fail("KVM_SET_USER_MEMORY_REGION");
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL);
    if (vcpu < 0) return fail("KVM_CREATE_VCPU");
    int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size < (int)sizeof(struct kvm_run)) return fail("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) return fail("mmap kvm_run");
    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) return fail("KVM_GET_SREGS");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) return fail("KVM_SET_SREGS");
    struct kvm_regs regs = { .rip = 0x1000, .rflags = 0x2 };
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) return fail("KVM_SET_REGS");
    int printed = 0;
    for (int exits = 0; exits < 100; exits++) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR) continue;
            return fail("KVM_RUN");
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x3f8 && run->io.size == 1) {
                printf("byte from the KVM guest: %c\n", *((char *)run + run->io.data_offset));
                printed = 1;
            }
            break;
        case KVM_EXIT_HLT:
            return printed ? 0 : 1;
        default:
            fprintf(stderr, "kvmprobe: unexpected exit reason %u\n", run->exit_reason);
            return 1;
        }
    }
    fprintf(stderr, "kvmprobe: the vCPU did not halt\n");
    return 1;
}
