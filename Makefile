# hvc: `make run` sets up this machine and runs a command in a micro-VM; `make test` runs every test.
SHELL := /bin/bash
PREFIX ?= /usr/local
BUILD := $(CURDIR)/build
ASSETS := $(BUILD)/share/hvc
HVC := $(CURDIR)/.build/release/hvc
AGENT := $(CURDIR)/.build/release/hvc-agent
export HVC_ASSETS ?= $(ASSETS)

# The API fuzz test's tools, from PyPI with every dependency pinned, in a virtualenv kept
# outside the clone and keyed by the requirements file's hash.
FUZZ_REQUIREMENTS := Tests/EndToEndTests/Fixtures/fuzz-requirements.txt
FUZZ_CACHE ?= /var/cache/hvc
FUZZ_VENV := $(FUZZ_CACHE)/fuzz-venv-$(shell sha256sum $(FUZZ_REQUIREMENTS) | cut -c1-12)
export HVC_FUZZ_PYTHON ?= $(FUZZ_VENV)/bin/python

# Debian packages hvc needs to build and run, and the peers the tests and the benchmark drive.
# Installed with services kept from starting (policy-rc.d): the tests start containerd and
# dockerd themselves, and a dockerd started with its defaults would rewrite the host's firewall.
PACKAGES := qemu-system-x86 qemu-utils busybox-static e2fsprogs erofs-utils cpio file \
	linux-source-6.1 flex bison bc libelf-dev \
	libseccomp-dev libcap-dev libarchive-dev runc python3 python3-yaml python3-jsonschema python3-venv \
	skopeo umoci docker-registry podman containerd docker.io docker-compose \
	containernetworking-plugins nftables iptables iproute2 util-linux iperf3 curl

.PHONY: all deps fuzz-deps build kernel initramfs policy assets image run test unit-test e2e-test isolation mutants bench install clean

all: build assets

deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy=1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; rc=$$?; \
	  if [ -n "$$policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	  exit $$rc; \
	fi

fuzz-deps: deps
	@[ -x $(FUZZ_VENV)/bin/schemathesis ] || \
	  { rm -rf $(FUZZ_VENV) && mkdir -p $(dir $(FUZZ_VENV)) && /usr/bin/python3 -m venv $(FUZZ_VENV) && \
	    $(FUZZ_VENV)/bin/pip install -q --no-deps -r $(FUZZ_REQUIREMENTS); }

build: deps
	swift build -c release

kernel: deps
	rootfs/kernel/build.sh $(ASSETS)/vmlinux

initramfs: build
	rootfs/agent/build-initramfs.sh $(AGENT) $(ASSETS)/initramfs.cpio

policy:
	install -D -m 644 Specs/seccomp/vmm.json $(ASSETS)/seccomp/vmm.json

assets: kernel initramfs policy

# The default image, in the default store (/var/lib/hvc) unless HVC_ROOT says otherwise.
image: build
	rootfs/images/busybox/build.sh $(HVC)

run: assets image
	$(HVC) run --rm busybox uname -a

unit-test: build
	swift test -c release --skip EndToEndTests

e2e-test: assets fuzz-deps
	HVC_BIN=$(HVC) swift test -c release --filter EndToEndTests

# The attacks whose rows make docs/isolation.md (make test runs them too).
ISOLATION_TESTS := IsolationTests|JailTests|HostileGuestTests|NetworkTests.tenantsAreApartOnTheWire|APITests.tenantsSeeOnlyTheirOwnContainers

isolation: assets fuzz-deps
	HVC_BIN=$(HVC) swift test -c release --filter "$(ISOLATION_TESTS)"
	python3 Tests/isolation-check.py

# The broken variant: the tests that record rows, with every attack disabled; each row must
# then fail (not shown). Their other assertions fail by design, so only the table they write is
# judged; their output is in .build/isolation-mutant.log.
ROW_TESTS := IsolationTests|JailTests.aMemoryHog|JailTests.aForkBomb|HostileGuestTests|NetworkTests.tenantsAreApartOnTheWire|APITests.tenantsSeeOnlyTheirOwnContainers

define run-mutants
	rm -f .build/isolation-mutant.md
	-HVC_BIN=$(HVC) HVC_ISOLATION_MUTANT=attacks swift test -c release --filter "$(ROW_TESTS)" >.build/isolation-mutant.log 2>&1
	python3 Tests/isolation-check.py --mutant
endef

mutants: assets fuzz-deps
	$(run-mutants)

test: assets fuzz-deps
	python3 bench/quote.py --check bench/results.md README.md
	HVC_BIN=$(HVC) swift test -c release
	python3 Tests/isolation-check.py
	$(run-mutants)

bench: assets image fuzz-deps
	bench/run.sh $(HVC)

install: build assets
	install -D -m 755 $(HVC) $(DESTDIR)$(PREFIX)/bin/hvc
	install -D -m 644 $(ASSETS)/vmlinux $(DESTDIR)$(PREFIX)/share/hvc/vmlinux
	install -D -m 644 $(ASSETS)/initramfs.cpio $(DESTDIR)$(PREFIX)/share/hvc/initramfs.cpio
	install -D -m 644 $(ASSETS)/kernel-release $(DESTDIR)$(PREFIX)/share/hvc/kernel-release
	install -D -m 644 $(ASSETS)/seccomp/vmm.json $(DESTDIR)$(PREFIX)/share/hvc/seccomp/vmm.json
	install -D -m 755 $(CURDIR)/.build/release/hvc-shim $(DESTDIR)$(PREFIX)/bin/hvc-shim
	install -D -m 755 $(CURDIR)/.build/release/hvcd $(DESTDIR)$(PREFIX)/bin/hvcd
	install -D -m 755 $(CURDIR)/.build/release/hvc-oci $(DESTDIR)$(PREFIX)/bin/hvc-oci

clean:
	rm -rf .build $(BUILD)
